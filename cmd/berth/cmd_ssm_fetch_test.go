package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeIMDSAndSSM answers IMDSv2 and SSM GetParameter for params.
func fakeIMDSAndSSM(t *testing.T, params map[string]string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/latest/api/token":
			io.WriteString(w, "tok")
		case "/latest/meta-data/placement/region":
			io.WriteString(w, "eu-west-1")
		case "/latest/meta-data/iam/security-credentials/":
			io.WriteString(w, "role")
		case "/latest/meta-data/iam/security-credentials/role":
			io.WriteString(w, `{"AccessKeyId":"ASIA","SecretAccessKey":"s","Token":"t"}`)
		case "/":
			if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential=ASIA/") {
				http.Error(w, `{"__type":"UnrecognizedClientException"}`, http.StatusBadRequest)
				return
			}
			var in struct{ Name string }
			json.NewDecoder(r.Body).Decode(&in)
			v, ok := params[in.Name]
			if !ok {
				http.Error(w, `{"__type":"ParameterNotFound"}`, http.StatusBadRequest)
				return
			}
			json.NewEncoder(w).Encode(map[string]any{"Parameter": map[string]string{"Value": v}})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestSSMFetch(t *testing.T) {
	srv := fakeIMDSAndSSM(t, map[string]string{"/berth/s/pki/ca.pem": "CA", "/berth/s/pki/k.pem": "KEY"})
	dir := filepath.Join(t.TempDir(), "pki")
	ssmFetchRetry = 10 * time.Millisecond
	tests := []struct {
		name     string
		args     []string
		wantCode int
	}{
		{"writes", []string{"--prefix", "/berth/s/pki", "ca.pem:0644", "k.pem"}, 0},
		{"no prefix", []string{"ca.pem"}, exitUsage},
		{"no names", []string{"--prefix", "/berth/s/pki"}, exitUsage},
		{"bad mode", []string{"--prefix", "/berth/s/pki", "ca.pem:rw"}, exitUsage},
		{"missing", []string{"--prefix", "/berth/s/pki", "gone.pem"}, 1},
		{"missing with wait", []string{"--prefix", "/berth/s/pki", "--wait", "50ms", "gone.pem"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"ssm-fetch", "--imds-endpoint", srv.URL, "--ssm-endpoint", srv.URL, "--dir", dir}, tt.args...)
			code, out, errOut := berth(t, args...)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stdout %q, stderr %q", code, tt.wantCode, out, errOut)
			}
		})
	}
	for name, want := range map[string]os.FileMode{"ca.pem": 0o644, "k.pem": 0o600} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil || st.Mode().Perm() != want {
			t.Errorf("%s: %v, mode %v, want %v", name, err, st.Mode().Perm(), want)
		}
	}
}
