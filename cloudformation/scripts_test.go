package cloudformation

import (
	"bytes"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeAWS is the fake aws CLI (internal/fakeaws), built once by TestMain;
// realBerth is this checkout's berth for this machine, which the fake go
// hands to create-stack.sh for "berth pki".
var fakeAWS, realBerth string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "berth-fakeaws")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fakeAWS = filepath.Join(dir, "aws")
	if out, err := exec.Command("go", "build", "-o", fakeAWS, "./internal/fakeaws").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build the fake aws: %v\n%s", err, out)
		os.Exit(1)
	}
	realBerth = filepath.Join(dir, "berth")
	if out, err := exec.Command("go", "build", "-o", realBerth, "../cmd/berth").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build berth: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// account is a fake AWS account: its state (stacks, buckets) lives on
// across the scripts' runs in one test.
type account struct {
	t     *testing.T
	state string
	home  string // the operator's HOME, kept across runs (the CA in ~/.config/berth)
	noAWS bool   // run without aws on PATH
}

func newAccount(t *testing.T) *account {
	return &account{t: t, state: t.TempDir(), home: t.TempDir()}
}

// run runs bin/NAME with the fake aws, ssh and go first on PATH and only the
// tools the scripts use, and returns its exit code, stdout, stderr and the
// log of this run's aws/ssh/go calls.
func (a *account) run(mode, name string, args ...string) (int, string, string, string) {
	t := a.t
	t.Helper()
	bin := t.TempDir()
	fakes := map[string]string{"aws": fakeAWS, "ssh": "testdata/fake-ssh", "go": "testdata/fake-go"}
	if a.noAWS {
		delete(fakes, "aws")
	}
	for tool, src := range fakes {
		abs, _ := filepath.Abs(src)
		if err := os.Symlink(abs, filepath.Join(bin, tool)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tool := range []string{"bash", "date", "dirname", "basename", "cat", "tr", "cut", "grep", "mktemp", "rm", "sha512sum", "cp", "mkdir", "chmod", "od", "wc"} {
		if p, err := exec.LookPath(tool); err == nil {
			os.Symlink(p, filepath.Join(bin, tool))
		}
	}
	logf := filepath.Join(t.TempDir(), "calls.log")
	cmd := exec.Command(filepath.Join("..", "bin", name), args...)
	cmd.Env = []string{"PATH=" + bin, "FAKE_AWS_LOG=" + logf, "FAKE_AWS_MODE=" + mode, "FAKE_AWS_STATE=" + a.state,
		"HOME=" + a.home, "TMPDIR=" + t.TempDir(), "FAKE_BERTH=" + realBerth}
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

// create runs create-stack.sh and fails the test unless it exits 0.
func (a *account) create(mode string, args ...string) (string, string) {
	a.t.Helper()
	code, out, errOut, calls := a.run(mode, "create-stack.sh", args...)
	if code != 0 {
		a.t.Fatalf("create-stack.sh %s: exit %d\n%s\n%s", strings.Join(args, " "), code, errOut, calls)
	}
	return out, calls
}

// stack reads the fake's state of a stack: status and parameters.
func (a *account) stack(name string) (status string, params map[string]string) {
	a.t.Helper()
	var st struct {
		StackStatus string
		Parameters  map[string]string
	}
	raw, err := os.ReadFile(filepath.Join(a.state, "stacks", name+".json"))
	if err != nil {
		return "", nil
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		a.t.Fatal(err)
	}
	return st.StackStatus, st.Parameters
}

// bucket reads the fake's state of a bucket and the content of one object.
func (a *account) bucket(name, key string) (map[string]string, []byte) {
	a.t.Helper()
	dir := filepath.Join(a.state, "buckets", name)
	var b map[string]string
	raw, err := os.ReadFile(filepath.Join(dir, "bucket.json"))
	if err != nil {
		return nil, nil
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		a.t.Fatal(err)
	}
	obj, _ := os.ReadFile(filepath.Join(dir, "objects", url.PathEscape(key)))
	return b, obj
}

const (
	stackName  = "berth-example-com"
	bucketName = "berth-example-com-123456789012-eu-west-1"
	newestAMI  = "ami-0a4230020400aaaaa" // the fake's newest Flatcar stable x86_64 image
	fakeBuilt  = "berth built by the fake go\n"
)

var threeFlags = []string{"-d", "example.com", "-r", "eu-west-1", "-k", "mykey"}

func sha512Hex(b []byte) string {
	sum := sha512.Sum512(b)
	return hex.EncodeToString(sum[:])
}

func mustContain(t *testing.T, what, s string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(s, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, s)
		}
	}
}

func mustNotContain(t *testing.T, what, s string, unwanted ...string) {
	t.Helper()
	for _, w := range unwanted {
		if strings.Contains(s, w) {
			t.Errorf("%s has %q:\n%s", what, w, s)
		}
	}
}

// The three flags are enough: the AMI is looked up, this checkout's berth
// built, uploaded to the stack's bucket and its checksum passed to the
// stack; the script waits and prints the nodes' addresses.
func TestCreateStackThreeFlags(t *testing.T) {
	a := newAccount(t)
	out, calls := a.create("", threeFlags...)
	sha := sha512Hex([]byte(fakeBuilt))
	key := "berth/linux-amd64/" + sha[:32]

	mustContain(t, "calls", calls, "go build -trimpath -o ", " ./cmd/berth CGO_ENABLED=0 GOOS=linux GOARCH=amd64 PWD="+filepath.Dir(mustAbs(t, ".")),
		"ec2 describe-images --owners 075585003325", "Name=name,Values=Flatcar-stable-*-hvm", "Name=architecture,Values=x86_64",
		"s3api create-bucket --bucket "+bucketName+" --object-ownership BucketOwnerEnforced --create-bucket-configuration LocationConstraint=eu-west-1",
		"--change-set-type CREATE", "--capabilities CAPABILITY_IAM", "execute-change-set", "wait stack-create-complete")
	status, params := a.stack(stackName)
	want := map[string]string{"DomainName": "example.com", "HostedZoneId": "Z123EXAMPLE", "KeyName": "mykey", "ImageId": newestAMI,
		"BerthBucket": bucketName, "BerthKey": key, "BerthHash": "sha512-" + sha, "BerthURL": "", "SSHLocation": "0.0.0.0/0",
		"FlatcarChannel": "stable", "ServerCount": "3"}
	if status != "CREATE_COMPLETE" {
		t.Errorf("stack status %q", status)
	}
	for k, v := range want {
		if params[k] != v {
			t.Errorf("parameter %s = %q, want %q", k, params[k], v)
		}
	}
	b, obj := a.bucket(bucketName, key)
	if string(obj) != fakeBuilt {
		t.Errorf("s3://%s/%s holds %q, want the built binary", bucketName, key, obj)
	}
	mustContain(t, "bucket", fmt.Sprint(b), "BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true",
		`"SSEAlgorithm":"AES256"`, "Key=berth:stack,Value="+stackName, "Region:eu-west-1")
	mustContain(t, "output", out, "Flatcar AMI "+newestAMI+" (Flatcar-stable-4230.2.4-hvm)", "uploaded berth to s3://"+bucketName+"/"+key,
		"load balancer: berth-lb-123.elb.eu-west-1.amazonaws.com",
		"i-0server2  public 203.0.113.12  private 10.0.2.11", "i-0worker1  public 203.0.113.21  private 10.0.1.50",
		"bin/tunnel.sh -n berth-example-com -r eu-west-1")
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// A second run changes nothing: no new bucket, no upload, an empty change
// set deleted and not executed.
func TestCreateStackTwiceIsSafe(t *testing.T) {
	a := newAccount(t)
	a.create("", threeFlags...)
	out, calls := a.create("", threeFlags...)
	mustContain(t, "output", out, "bucket "+bucketName+" exists", "is in place", "up to date")
	mustContain(t, "calls", calls, "--change-set-type UPDATE", "delete-change-set", "put-public-access-block")
	mustNotContain(t, "calls", calls, "create-bucket", "put-object", "execute-change-set")
	if status, _ := a.stack(stackName); status != "CREATE_COMPLETE" {
		t.Errorf("stack status %q after the second run", status)
	}
}

// A new binary is uploaded beside the old one and updates the stack.
func TestCreateStackNewBinaryUpdates(t *testing.T) {
	a := newAccount(t)
	a.create("", threeFlags...)
	bin := filepath.Join(t.TempDir(), "berth")
	if err := os.WriteFile(bin, []byte("berth 2\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, calls := a.create("", append(threeFlags, "-f", bin, "-p", "WorkerDesired=3")...)
	sha := sha512Hex([]byte("berth 2\n"))
	mustContain(t, "calls", calls, "put-object", "--change-set-type UPDATE", "execute-change-set", "wait stack-update-complete")
	mustNotContain(t, "calls", calls, "go build -trimpath", "create-bucket")
	status, params := a.stack(stackName)
	if status != "UPDATE_COMPLETE" || params["BerthHash"] != "sha512-"+sha || params["WorkerDesired"] != "3" {
		t.Errorf("after the update: %s %v", status, params)
	}
	if _, old := a.bucket(bucketName, "berth/linux-amd64/"+sha512Hex([]byte(fakeBuilt))[:32]); string(old) != fakeBuilt {
		t.Error("the old binary was removed; nodes of the old launch template still fetch it")
	}
}

// -i and -u/-c override the lookup and the upload: no image search, no
// build for the nodes, no bucket (berth is still built for this machine, for
// the CA).
func TestCreateStackOverrides(t *testing.T) {
	a := newAccount(t)
	hash := "sha512-" + sha512Hex([]byte("release"))
	_, calls := a.create("", append(threeFlags, "-i", "ami-0123456789abcdef0", "-u", "https://example.com/berth", "-c", hash,
		"-s", "198.51.100.0/24", "-p", "ServerCount=5", "-p", "FlatcarChannel=beta")...)
	mustNotContain(t, "calls", calls, "describe-images", "go build -trimpath", "s3api", "sts ")
	_, params := a.stack(stackName)
	want := map[string]string{"ImageId": "ami-0123456789abcdef0", "BerthURL": "https://example.com/berth", "BerthHash": hash,
		"BerthBucket": "", "BerthKey": "", "SSHLocation": "198.51.100.0/24", "ServerCount": "5", "FlatcarChannel": "beta"}
	for k, v := range want {
		if params[k] != v {
			t.Errorf("parameter %s = %q, want %q", k, params[k], v)
		}
	}
	// The channel picks the image when -i is not given.
	b := newAccount(t)
	out, _ := b.create("", append(threeFlags, "-p", "FlatcarChannel=beta", "-f", "testdata/fake-go")...)
	mustContain(t, "output", out, "Flatcar AMI ami-0c4284010000ccccc (Flatcar-beta-4284.1.0-hvm)")
}

func TestCreateStackUSEast1HasNoLocationConstraint(t *testing.T) {
	a := newAccount(t)
	_, calls := a.create("", "-d", "example.com", "-r", "us-east-1", "-k", "mykey")
	mustContain(t, "calls", calls, "create-bucket --bucket berth-example-com-123456789012-us-east-1 --object-ownership BucketOwnerEnforced\n")
}

func TestCreateStackRefusesBadFlags(t *testing.T) {
	hash := "sha512-" + sha512Hex([]byte("x"))
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"nothing", nil, "missing -d DOMAIN -r REGION -k KEY"},
		{"no key", []string{"-d", "example.com", "-r", "eu-west-1"}, "missing -k KEY"},
		{"unknown flag", append(threeFlags, "-x"), "illegal option"},
		{"extra argument", append(threeFlags, "now"), "unexpected arguments: now"},
		{"bad region", []string{"-d", "example.com", "-r", "europe", "-k", "k"}, "is not a region"},
		{"bad ami", append(threeFlags, "-i", "flatcar"), "is not an AMI id"},
		{"url without hash", append(threeFlags, "-u", "https://example.com/berth"), "-u URL and -c HASH go together"},
		{"hash without url", append(threeFlags, "-c", hash), "-u URL and -c HASH go together"},
		{"http url", append(threeFlags, "-u", "http://example.com/berth", "-c", hash), "is not an https URL"},
		{"sha256 hash", append(threeFlags, "-u", "https://example.com/berth", "-c", "sha256-"+strings.Repeat("a", 64)), "-c takes sha512-"},
		{"file and url", append(threeFlags, "-f", "testdata/fake-go", "-u", "https://example.com/berth", "-c", hash), "exclude each other"},
		{"missing file", append(threeFlags, "-f", "no/such/berth"), "is not a file"},
		{"bad parameter", append(threeFlags, "-p", "ServerCount"), "-p takes Param=Value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut, calls := newAccount(t).run("", "create-stack.sh", tc.args...)
			if code != 2 || !strings.Contains(errOut, "usage:") || !strings.Contains(errOut, tc.want) || calls != "" {
				t.Errorf("exit %d (want 2), stderr %q (want usage and %q), calls %q", code, errOut, tc.want, calls)
			}
		})
	}
}

func TestCreateStackFailures(t *testing.T) {
	a := newAccount(t)
	code, _, errOut, _ := a.run("fail", "create-stack.sh", threeFlags...)
	if code != 1 {
		t.Fatalf("a failed stack: exit %d", code)
	}
	mustContain(t, "stderr", errOut, "the stack failed", "ServerGroup\tCREATE_FAILED\tYou have requested more vCPU capacity")
	// A rolled back stack cannot be updated: say what to do.
	code, _, errOut, calls := a.run("", "create-stack.sh", threeFlags...)
	if code != 1 || !strings.Contains(errOut, "is ROLLBACK_COMPLETE") || !strings.Contains(errOut, "bin/destroy-stack.sh") ||
		strings.Contains(calls, "create-change-set") {
		t.Errorf("after a rollback: exit %d %q", code, errOut)
	}

	// A failed change set leaves a new stack in REVIEW_IN_PROGRESS; the next
	// run creates it.
	b := newAccount(t)
	code, _, errOut, _ = b.run("csfail", "create-stack.sh", threeFlags...)
	if code != 1 || !strings.Contains(errOut, "change set failed: Template error") {
		t.Fatalf("failed change set: exit %d %q", code, errOut)
	}
	if status, _ := b.stack(stackName); status != "REVIEW_IN_PROGRESS" {
		t.Fatalf("after a failed change set the fake's stack is %q", status)
	}
	_, calls = b.create("", threeFlags...)
	mustContain(t, "calls", calls, "--change-set-type CREATE", "wait stack-create-complete")

	// No hosted zone, no stack.
	code, _, errOut, calls = newAccount(t).run("", "create-stack.sh", "-d", "missing.io", "-r", "eu-west-1", "-k", "k")
	if code != 1 || !strings.Contains(errOut, "no Route53 hosted zone for missing.io") || strings.Contains(calls, "cloudformation") {
		t.Errorf("without a zone: exit %d %q", code, errOut)
	}

	// No image of the channel in the region.
	d := newAccount(t)
	os.WriteFile(filepath.Join(d.state, "images.json"), []byte("[]"), 0o644)
	code, _, errOut, calls = d.run("", "create-stack.sh", threeFlags...)
	if code != 1 || !strings.Contains(errOut, "no Flatcar stable AMI (x86_64) in eu-west-1: pass -i AMI") || strings.Contains(calls, "cloudformation") {
		t.Errorf("without an image: exit %d %q", code, errOut)
	}

	// A bucket name another account owns.
	c := newAccount(t)
	taken := filepath.Join(c.state, "buckets", bucketName, "bucket.json")
	os.MkdirAll(filepath.Dir(taken), 0o755)
	os.WriteFile(taken, []byte(`{"Owner":"999999999999","Region":"eu-west-1"}`), 0o644)
	code, _, errOut, calls = c.run("", "create-stack.sh", threeFlags...)
	if code != 1 || !strings.Contains(errOut, "pass -b BUCKET") || strings.Contains(calls, "create-change-set") {
		t.Errorf("a taken bucket name: exit %d %q", code, errOut)
	}
	_, calls = c.create("", append(threeFlags, "-b", "my-berth-binaries")...)
	mustContain(t, "calls", calls, "ParameterKey=BerthBucket,ParameterValue=my-berth-binaries")
}

func TestScriptsRefuseBadInvocations(t *testing.T) {
	for _, name := range []string{"create-stack.sh", "tunnel.sh", "destroy-stack.sh"} {
		code, out, _, _ := newAccount(t).run("", name, "-h")
		if code != 0 || !strings.Contains(out, "usage:") {
			t.Errorf("%s -h: exit %d %q", name, code, out)
		}
		code, _, errOut, calls := newAccount(t).run("", name)
		if code != 2 || !strings.Contains(errOut, "missing") || calls != "" {
			t.Errorf("%s without arguments: exit %d %q, aws called: %q", name, code, errOut, calls)
		}
	}
	a := newAccount(t)
	a.noAWS = true
	code, _, errOut, _ := a.run("", "create-stack.sh", threeFlags...)
	if code == 0 || !strings.Contains(errOut, "aws CLI is not installed") {
		t.Errorf("without aws: exit %d %q", code, errOut)
	}
}

func TestTunnel(t *testing.T) {
	a := newAccount(t)
	a.create("", threeFlags...)
	code, out, errOut, calls := a.run("", "tunnel.sh", "-n", stackName, "-r", "eu-west-1", "-l", "12379")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	// i-0server1 is still Pending: the tunnel goes to the first server in service.
	mustContain(t, "ssh call", calls, "ssh -f -N", "-L 127.0.0.1:12379:127.0.0.1:2379", "core@203.0.113.12")
	pki := filepath.Join(a.home, ".config", "berth", stackName, "pki")
	mustContain(t, "exports", out, "export BERTH_ETCD_ENDPOINTS=https://127.0.0.1:12379", "export ETCDCTL_ENDPOINTS=https://127.0.0.1:12379",
		"export BERTH_ETCD_CACERT="+pki+"/ca.pem", "export BERTH_ETCD_CERT="+pki+"/berth-operator.pem",
		"export BERTH_ETCD_KEY="+pki+"/berth-operator-key.pem", "export ETCDCTL_CERT="+pki+"/berth-operator.pem",
		"export FLEETCTL_TUNNEL=203.0.113.12", "export BERTH_TUNNEL=core@203.0.113.12")
	code, _, errOut, _ = a.run("", "tunnel.sh", "-n", stackName, "-r", "eu-west-1", "-P", t.TempDir())
	if code != 1 || !strings.Contains(errOut, "etcd wants a client certificate") {
		t.Errorf("without the certificates: exit %d %q", code, errOut)
	}
	code, _, errOut, _ = newAccount(t).run("", "tunnel.sh", "-n", stackName, "-r", "eu-west-1")
	if code != 1 || !strings.Contains(errOut, "no stack berth-example-com in eu-west-1") {
		t.Errorf("without the stack: exit %d %q", code, errOut)
	}
}

func TestDestroyStack(t *testing.T) {
	a := newAccount(t)
	a.create("", threeFlags...)
	code, _, errOut, calls := a.run("", "destroy-stack.sh", "-n", stackName, "-r", "eu-west-1")
	if code == 0 || strings.Contains(calls, "delete-stack") || !strings.Contains(errOut, "not deleted") {
		t.Fatalf("without -y and no answer: exit %d %q %q", code, errOut, calls)
	}
	code, out, errOut, calls := a.run("", "destroy-stack.sh", "-n", stackName, "-r", "eu-west-1", "-y")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	mustContain(t, "aws calls", calls, "delete-stack --stack-name berth-example-com", "wait stack-delete-complete",
		"s3 rb s3://"+bucketName+" --force")
	mustContain(t, "output", out, "deleted bucket "+bucketName)
	if status, _ := a.stack(stackName); status != "" {
		t.Errorf("the stack is still there: %s", status)
	}
	if b, _ := a.bucket(bucketName, ""); b != nil {
		t.Error("the bucket is still there")
	}
	// A stack made with -u has no bucket to delete.
	b := newAccount(t)
	b.create("", append(threeFlags, "-u", "https://example.com/berth", "-c", "sha512-"+sha512Hex(nil))...)
	code, _, errOut, calls = b.run("", "destroy-stack.sh", "-n", stackName, "-r", "eu-west-1", "-y")
	if code != 0 || strings.Contains(calls, "s3 rb") {
		t.Errorf("destroy a stack without a bucket: exit %d %q\n%s", code, errOut, calls)
	}
}
