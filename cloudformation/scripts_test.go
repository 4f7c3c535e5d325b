package cloudformation

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// script runs bin/NAME with a fake aws (and ssh) first on PATH, and returns
// its exit code, stdout, stderr and the log of aws/ssh calls.
func script(t *testing.T, mode string, withAWS bool, name string, args ...string) (int, string, string, string) {
	t.Helper()
	bin := t.TempDir()
	if withAWS {
		for _, f := range []string{"aws", "ssh"} {
			src, _ := filepath.Abs("testdata/fake-" + f)
			if err := os.Symlink(src, filepath.Join(bin, f)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tool := range []string{"bash", "date", "dirname", "basename", "cat", "tr", "cut", "grep"} {
		if p, err := exec.LookPath(tool); err == nil {
			os.Symlink(p, filepath.Join(bin, tool))
		}
	}
	logf := filepath.Join(t.TempDir(), "calls.log")
	cmd := exec.Command(filepath.Join("..", "bin", name), args...)
	cmd.Env = []string{"PATH=" + bin, "FAKE_AWS_LOG=" + logf, "FAKE_AWS_MODE=" + mode, "HOME=" + t.TempDir()}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Stdin = strings.NewReader("")
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	calls, _ := os.ReadFile(logf)
	return code, out.String(), errb.String(), string(calls)
}

var createArgs = []string{"-d", "example.com", "-r", "eu-west-1", "-k", "mykey", "-i", "ami-0123456789abcdef0",
	"-u", "https://example.com/berth", "-s", "198.51.100.0/24", "-p", "ServerCount=5"}

func mustContain(t *testing.T, what, s string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(s, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, s)
		}
	}
}

func TestCreateStackNew(t *testing.T) {
	code, out, errOut, calls := script(t, "", true, "create-stack.sh", createArgs...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	mustContain(t, "aws calls", calls, "create-change-set --stack-name berth-example-com", "--change-set-type CREATE",
		"ParameterKey=HostedZoneId,ParameterValue=Z123EXAMPLE", "ParameterKey=ServerCount,ParameterValue=5",
		"ParameterKey=SSHLocation,ParameterValue=198.51.100.0/24", "--capabilities CAPABILITY_IAM",
		"execute-change-set", "wait stack-create-complete")
	mustContain(t, "output", out, "load balancer: berth-lb-123.elb.eu-west-1.amazonaws.com",
		"i-0server1  public 203.0.113.10  private 10.0.1.10", "i-0worker1", "bin/tunnel.sh -n berth-example-com")
}

func TestCreateStackTwiceIsSafe(t *testing.T) {
	code, out, errOut, calls := script(t, "exists nochange", true, "create-stack.sh", createArgs...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	mustContain(t, "output", out, "up to date")
	mustContain(t, "aws calls", calls, "--change-set-type UPDATE", "delete-change-set")
	if strings.Contains(calls, "execute-change-set") {
		t.Error("an empty change set was executed")
	}
}

func TestCreateStackUpdate(t *testing.T) {
	code, _, errOut, calls := script(t, "exists", true, "create-stack.sh", createArgs...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	mustContain(t, "aws calls", calls, "--change-set-type UPDATE", "execute-change-set", "wait stack-update-complete")
}

func TestCreateStackFailurePrintsEvents(t *testing.T) {
	code, _, errOut, _ := script(t, "fail", true, "create-stack.sh", createArgs...)
	if code == 0 {
		t.Fatal("a failed stack exited 0")
	}
	mustContain(t, "stderr", errOut, "the stack failed", "ServerGroup", "CREATE_FAILED", "vCPU capacity")
	code, _, errOut, _ = script(t, "csfail", true, "create-stack.sh", createArgs...)
	if code == 0 || !strings.Contains(errOut, "change set failed: Template error") {
		t.Fatalf("failed change set: exit %d %q", code, errOut)
	}
}

func TestScriptsRefuseBadInvocations(t *testing.T) {
	for _, name := range []string{"create-stack.sh", "tunnel.sh", "destroy-stack.sh"} {
		code, out, _, _ := script(t, "", true, name, "-h")
		if code != 0 || !strings.Contains(out, "usage:") {
			t.Errorf("%s -h: exit %d %q", name, code, out)
		}
		code, _, errOut, calls := script(t, "", true, name)
		if code == 0 || !strings.Contains(errOut, "missing") || calls != "" {
			t.Errorf("%s without arguments: exit %d %q, aws called: %q", name, code, errOut, calls)
		}
	}
	code, _, errOut, _ := script(t, "", false, "create-stack.sh", createArgs...)
	if code == 0 || !strings.Contains(errOut, "aws CLI is not installed") {
		t.Errorf("without aws: exit %d %q", code, errOut)
	}
}

func TestTunnel(t *testing.T) {
	code, out, errOut, calls := script(t, "exists", true, "tunnel.sh", "-n", "berth-example-com", "-r", "eu-west-1", "-l", "12379")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	mustContain(t, "ssh call", calls, "ssh -f -N", "-L 127.0.0.1:12379:127.0.0.1:2379", "core@203.0.113.10")
	mustContain(t, "exports", out, "export BERTH_ETCD_ENDPOINTS=127.0.0.1:12379", "export ETCDCTL_ENDPOINTS=127.0.0.1:12379",
		"export FLEETCTL_TUNNEL=203.0.113.10", "export BERTH_TUNNEL=core@203.0.113.10")
}

func TestDestroyStack(t *testing.T) {
	code, _, errOut, calls := script(t, "exists", true, "destroy-stack.sh", "-n", "berth-example-com", "-r", "eu-west-1", "-y")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	mustContain(t, "aws calls", calls, "delete-stack --stack-name berth-example-com", "wait stack-delete-complete")
	code, _, errOut, calls = script(t, "exists", true, "destroy-stack.sh", "-n", "berth-example-com", "-r", "eu-west-1")
	if code == 0 || strings.Contains(calls, "delete-stack") || !strings.Contains(errOut, "not deleted") {
		t.Fatalf("without -y and no answer: exit %d %q %q", code, errOut, calls)
	}
}
