package engines

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/berthproject/berth/internal/enginetest"
	"github.com/berthproject/berth/internal/pki"
	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/secret"
	"github.com/berthproject/berth/internal/spec"
)

// Registry credentials of the test.
const (
	regUser     = "berth"
	regPassword = "s3cret-pull"
	regHost     = "localhost:5000"
	regImage    = regHost + "/berth/demo:1"
)

// startRegistry runs Debian's docker-registry (distribution 2.8) on the
// node's 127.0.0.1:5000 with htpasswd auth and TLS (a certificate from
// internal/pki, trusted by both engines through their certs.d).
func startRegistry(t *testing.T, n *enginetest.Node) {
	dir := filepath.Join(n.Share, "registry")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ca, err := pki.Init(filepath.Join(dir, "pki"), "berth-test-registry-ca")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Issue(pki.Request{Name: "registry", Role: pki.RoleServer, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, DNS: []string{"localhost"}}); err != nil {
		t.Fatal(err)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(regPassword), bcrypt.DefaultCost)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "htpasswd"), regUser+":"+string(hash)+"\n")
	writeFile(t, filepath.Join(dir, "config.yml"), `version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: /var/lib/berth-registry
http:
  addr: 127.0.0.1:5000
  tls:
    certificate: /run/berth-share/registry/pki/registry.pem
    key: /run/berth-share/registry/pki/registry-key.pem
auth:
  htpasswd:
    realm: berth-test
    path: /run/berth-share/registry/htpasswd
`)
	b, err := os.ReadFile("/usr/bin/docker-registry")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "docker-registry"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"/etc/docker/certs.d/" + regHost, "/etc/containers/certs.d/" + regHost} {
		n.Exec("mkdir", "-p", d)
		n.Exec("cp", "/run/berth-share/registry/pki/ca.pem", d+"/ca.crt")
	}
	n.Exec("systemd-run", "--unit", "berth-test-registry", "/run/berth-share/registry/docker-registry", "serve", "/run/berth-share/registry/config.yml")
	n.WaitFor("the registry listening", 30*time.Second, func() bool {
		_, err := n.Try("curl", "-sf", "-o", "/dev/null", "--cacert", "/run/berth-share/registry/pki/ca.pem", "https://"+regHost+"/")
		return err == nil
	})
}

// authFile is a registry auth file (docker's config.json, podman's
// auth.json: the same "auths" format) for user and password.
func authFile(user, password string) string {
	return fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, regHost, base64.StdEncoding.EncodeToString([]byte(user+":"+password)))
}

// defaultAuthFiles are where the engines look for credentials by default
// as root: docker's, podman's (with and without XDG_RUNTIME_DIR, and its
// fallbacks). berth's units must not need any of them.
var defaultAuthFiles = []string{"/root/.docker/config.json", "/run/containers/0/auth.json",
	"/run/user/0/containers/auth.json", "/root/.config/containers/auth.json", "/etc/containers/auth.json"}

// noDefaultAuth fails if any default auth file exists on the node.
func noDefaultAuth(t *testing.T, n *enginetest.Node, when string) {
	t.Helper()
	for _, f := range defaultAuthFiles {
		if _, err := n.Try("test", "-e", f); err == nil {
			t.Fatalf("%s: the node has the engines' default auth file %s", when, f)
		}
	}
}

// privateRegistry: both engines pull the image from the registry through
// the rendered units' pull step, with the credentials of the app's sealed
// pullSecret (written by the pre-start hook to the instance's secrets
// directory on tmpfs) and no default auth file on the node; a wrong
// password fails the unit with the registry's answer in its journal, and
// the unit's restart limit ends the retries.
func privateRegistry(t *testing.T, n *enginetest.Node, st *secret.Store) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	startRegistry(t, n)
	noDefaultAuth(t, n, "before the test")
	// Anonymous pulls are refused: the registry does check credentials.
	if out, err := n.Try("docker", "pull", regImage); err == nil {
		t.Fatalf("anonymous pull succeeded:\n%s", out)
	}
	// The push uses a config directory of its own, removed after.
	push := filepath.Join(n.Share, "push")
	if err := os.MkdirAll(push, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(push, "config.json"), authFile(regUser, regPassword))
	n.Exec("docker", "tag", image, regImage)
	n.Exec("docker", "--config", "/run/berth-share/push", "push", regImage)
	n.Exec("docker", "rmi", regImage)
	if err := os.RemoveAll(push); err != nil {
		t.Fatal(err)
	}
	noDefaultAuth(t, n, "after the push")

	for _, rt := range []string{spec.RuntimeDocker, spec.RuntimePodman} {
		name := rt[:1] + "priv"
		if _, err := st.Put(ctx, name, "registry-auth", []byte(authFile(regUser, regPassword))); err != nil {
			t.Fatal(err)
		}
		app, y := appSpec(t, name, rt, regImage, spec.PullAlways, "pullSecret: registry-auth")
		install(t, n, app, y)
		unit := name + "@1.service"
		// The pull step reads the hook's auth file, nothing else.
		want := map[string]string{spec.RuntimeDocker: "--config /run/berth/secrets/%p@%i pull",
			spec.RuntimePodman: "pull --authfile /run/berth/secrets/%p@%i/config.json"}[rt]
		if u := n.Exec("systemctl", "cat", unit); !strings.Contains(u, want) {
			t.Fatalf("%s: no %q in the unit:\n%s", unit, want, u)
		}
		startUnit(t, n, unit)
		n.WaitFor(rt+" instance from the private registry registered", 60*time.Second, func() bool {
			in := instance(t, n, name, "1")
			return in != nil && in.Addr == "127.0.0.1:"+publishedPort(n, rt, name+"-1", "8080/tcp")
		})
		// The pull step's own output: the manifest came from the registry.
		pulled := map[string]string{spec.RuntimeDocker: "Digest: sha256:", spec.RuntimePodman: "Writing manifest"}[rt]
		if j := n.Journal(unit); !strings.Contains(j, pulled) {
			t.Errorf("%s: no %q from the pull step in the journal:\n%s", unit, pulled, j)
		}
		// The pre-start hook names the registry it has credentials for.
		if l := firstLine(n.Journal(unit), "secrets written"); !strings.Contains(l, "registry-auth") || !strings.Contains(l, regHost) {
			t.Errorf("%s: the pre-start hook does not name the pull secret's registry: %q", unit, l)
		}
		// Neither the unit nor its journal holds the credentials.
		cred := base64.StdEncoding.EncodeToString([]byte(regUser + ":" + regPassword))
		if u := n.Exec("sh", "-c", "systemctl cat "+unit+"; systemctl show "+unit+"; journalctl --no-pager -o export"); strings.Contains(u, regPassword) || strings.Contains(u, cred) {
			t.Errorf("%s: the unit or the journal holds the registry password", unit)
		}
		auth := "/run/berth/secrets/" + name + "@1/config.json"
		if m := n.Exec("stat", "-c", "%a %U", auth); strings.TrimSpace(m) != "600 root" {
			t.Errorf("%s: mode %q, want 600 root", auth, m)
		}
		n.Exec("systemctl", "stop", unit)
		if _, err := n.Try("test", "-e", auth); err == nil {
			t.Errorf("%s left after the stop", auth)
		}
	}
	noDefaultAuth(t, n, "after the pulls")

	// A wrong password: the pull fails, the unit fails and is retried at
	// most StartLimitBurst times (3 in appSpec) before systemd gives up
	// ("Start request repeated too quickly"), and nothing starts it again.
	n.Exec("podman", "rmi", "-f", regImage)
	for _, rt := range []string{spec.RuntimeDocker, spec.RuntimePodman} {
		name := rt[:1] + "bad"
		if _, err := st.Put(ctx, name, "registry-auth", []byte(authFile(regUser, "wrong-password"))); err != nil {
			t.Fatal(err)
		}
		app, y := appSpec(t, name, rt, regImage, spec.PullAlways, "pullSecret: registry-auth")
		install(t, n, app, y)
		unit := name + "@1.service"
		if out, err := n.Try("systemctl", "start", unit); err == nil {
			t.Fatalf("%s started with a wrong registry password:\n%s", unit, out)
		}
		deadline := time.Now().Add(60 * time.Second)
		for unitProp(n, unit, "ActiveState") != "failed" || !strings.Contains(n.Journal(unit), "Start request repeated too quickly") {
			if time.Now().After(deadline) {
				t.Fatalf("%s not given up by systemd: %s %s, %s restarts\n%s", unit, unitProp(n, unit, "ActiveState"),
					unitProp(n, unit, "Result"), unitProp(n, unit, "NRestarts"), n.Journal(unit))
			}
			time.Sleep(200 * time.Millisecond)
		}
		j := n.Journal(unit)
		pulls := strings.Count(j, "unauthorized")
		time.Sleep(3 * time.Second) // longer than RestartSec: no further attempt
		if again := strings.Count(n.Journal(unit), "unauthorized"); again != pulls || pulls == 0 || pulls > app.Restart.Burst {
			t.Fatalf("%s: %d failed pulls, then %d (want 1..%d, then no more):\n%s", unit, pulls, again, app.Restart.Burst, j)
		}
		if instance(t, n, name, "1") != nil {
			t.Fatalf("%s registered without its image", unit)
		}
		// The node agent reports the failure in the app's status.
		n.WaitFor(name+"'s status failed", 30*time.Second, func() bool {
			st := status(t, n, name)
			return st != nil && st.Current == registry.StatusFailed && strings.Contains(st.Message, unit)
		})
		t.Logf("%s: %d pull attempts, journal says: %s", unit, pulls, firstLine(j, "unauthorized"))
	}
}

// firstLine returns the first line of s containing sub.
func firstLine(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}
