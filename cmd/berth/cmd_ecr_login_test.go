package main

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthproject/berth/internal/ecr"
	"github.com/berthproject/berth/internal/etcdtest"
)

// fakeECR is an IMDSv2 and ECR's GetAuthorizationToken (the ecr package's
// test checks the signature; this one the commands' wiring).
func fakeECR(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/latest/api/token":
			io.WriteString(w, "tok")
		case "/latest/meta-data/placement/region":
			io.WriteString(w, "eu-west-1")
		case "/latest/meta-data/iam/security-credentials/":
			io.WriteString(w, "role\n")
		case "/latest/meta-data/iam/security-credentials/role":
			io.WriteString(w, `{"AccessKeyId":"ASIA","SecretAccessKey":"s","Token":"t"}`)
		case "/":
			if r.Header.Get("X-Amz-Target") != ecr.Target || !strings.Contains(r.Header.Get("Authorization"), "/eu-west-1/ecr/aws4_request") {
				http.Error(w, `{"__type":"InvalidSignatureException"}`, http.StatusBadRequest)
				return
			}
			json.NewEncoder(w).Encode(map[string]any{"authorizationData": []map[string]any{{
				"authorizationToken": base64.StdEncoding.EncodeToString([]byte("AWS:ecr-pass")), "expiresAt": 1.9e9}}})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

const ecrImage = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop:1"

func checkECRConfig(t *testing.T, path string) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v, want a 0600 file", path, err)
	}
	b, _ := os.ReadFile(path)
	var cfg struct {
		Auths map[string]struct{ Auth string } `json:"auths"`
	}
	json.Unmarshal(b, &cfg)
	got, _ := base64.StdEncoding.DecodeString(cfg.Auths["123456789012.dkr.ecr.eu-west-1.amazonaws.com"].Auth)
	if string(got) != "AWS:ecr-pass" {
		t.Errorf("%s: auth %q for the registry, want AWS:ecr-pass", path, got)
	}
}

func TestECRLogin(t *testing.T) {
	srv := fakeECR(t)
	auth := filepath.Join(t.TempDir(), "ecr", "config.json")
	code, out, errOut := berth(t, "ecr-login", ecrImage, "--auth-file", auth, "--imds-endpoint", srv.URL, "--ecr-endpoint", srv.URL)
	if code != 0 || !strings.Contains(out, "valid until 2030") || strings.Contains(out, "ecr-pass") {
		t.Fatalf("ecr-login: %d %q %q", code, out, errOut)
	}
	checkECRConfig(t, auth)
	if code, _, errOut := berth(t, "ecr-login", "nginx:1", "--auth-file", auth, "--imds-endpoint", srv.URL); code == 0 || !strings.Contains(errOut, "not in ECR") {
		t.Errorf("a non-ECR image: %d %q", code, errOut)
	}
}

// TestPreStartECR: pullSecret aws:ecr makes the pre-start hook log in and
// write the unit's auth file, with no identity needed.
func TestPreStartECR(t *testing.T) {
	srv := fakeECR(t)
	etcd, _ := etcdtest.New(t)
	shm, err := os.MkdirTemp("/dev/shm", "berth-ecr-test-")
	if err != nil {
		t.Skip("no tmpfs at /dev/shm")
	}
	defer os.RemoveAll(shm)
	dir := filepath.Join(shm, "secrets", "shop@1")
	code, _, errOut := berth(t, "hook", "pre-start", "--app", "shop", "--instance", "1", "--etcd-endpoints", etcd.Endpoint,
		"--secrets-dir", dir, "--pull-secret", "aws:ecr", "--image", ecrImage, "--imds-endpoint", srv.URL, "--ecr-endpoint", srv.URL,
		"--identity", filepath.Join(shm, "no-such.key"))
	if code != 0 {
		t.Fatalf("pre-start: %s", errOut)
	}
	checkECRConfig(t, filepath.Join(dir, "config.json"))
}
