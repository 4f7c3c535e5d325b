package ssmfetch

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSignPostVanilla checks sign against the AWS Signature Version 4 test
// suite's post-vanilla case.
func TestSignPostVanilla(t *testing.T) {
	req, err := http.NewRequest(http.MethodPost, "https://example.amazonaws.com/", nil)
	if err != nil {
		t.Fatal(err)
	}
	c := Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}
	sign(req, nil, c, "us-east-1", "service", time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC))
	want := "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, " +
		"SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
	if got := req.Header.Get("Authorization"); got != want {
		t.Errorf("Authorization:\n got %s\nwant %s", got, want)
	}
}

// TestSignQuery checks Sign against the test suite's
// get-vanilla-query-order-key-case: the query is sorted.
func TestSignQuery(t *testing.T) {
	req, err := http.NewRequest(http.MethodGet, "https://example.amazonaws.com/?Param2=value2&Param1=value1", nil)
	if err != nil {
		t.Fatal(err)
	}
	c := Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}
	Sign(req, nil, c, "us-east-1", "service", time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC))
	want := "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, " +
		"SignedHeaders=host;x-amz-date, Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
	if got := req.Header.Get("Authorization"); got != want {
		t.Errorf("Authorization:\n got %s\nwant %s", got, want)
	}
}

// fakeAWS is an IMDSv2 and an SSM JSON API in one server.
type fakeAWS struct {
	mu       sync.Mutex
	params   map[string]string
	auths    []string
	tokens   []string // X-Amz-Security-Token of SSM calls
	denyName string   // GetParameter of this name is AccessDenied
}

const (
	imdsToken = "imds-token-1"
	roleName  = "berth-server-role"
)

func (f *fakeAWS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if strings.HasPrefix(r.URL.Path, "/latest/") {
		if r.URL.Path == "/latest/api/token" {
			if r.Method != http.MethodPut || r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds") == "" {
				http.Error(w, "bad token request", http.StatusBadRequest)
				return
			}
			io.WriteString(w, imdsToken)
			return
		}
		if r.Header.Get("X-aws-ec2-metadata-token") != imdsToken {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/latest/meta-data/placement/region":
			io.WriteString(w, "eu-west-1")
		case "/latest/meta-data/iam/security-credentials/":
			io.WriteString(w, roleName+"\n")
		case "/latest/meta-data/iam/security-credentials/" + roleName:
			json.NewEncoder(w).Encode(map[string]string{"Code": "Success", "AccessKeyId": "ASIAEXAMPLE",
				"SecretAccessKey": "secret", "Token": "session-token", "Expiration": "2030-01-01T00:00:00Z"})
		default:
			http.NotFound(w, r)
		}
		return
	}
	if r.Method != http.MethodPost || r.Header.Get("X-Amz-Target") != "AmazonSSM.GetParameter" ||
		r.Header.Get("Content-Type") != "application/x-amz-json-1.1" {
		http.Error(w, "bad ssm request", http.StatusBadRequest)
		return
	}
	f.auths = append(f.auths, r.Header.Get("Authorization"))
	f.tokens = append(f.tokens, r.Header.Get("X-Amz-Security-Token"))
	var in struct {
		Name           string
		WithDecryption bool
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || !in.WithDecryption {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	if in.Name == f.denyName {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"__type":"AccessDeniedException","message":"not allowed"}`)
		return
	}
	v, ok := f.params[in.Name]
	if !ok {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"__type":"ParameterNotFound"}`)
		return
	}
	json.NewEncoder(w).Encode(map[string]any{"Parameter": map[string]any{"Name": in.Name, "Type": "SecureString", "Value": v, "Version": 1}})
}

var authRE = regexp.MustCompile(`^AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE/\d{8}/eu-west-1/ssm/aws4_request, ` +
	`SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, Signature=[0-9a-f]{64}$`)

func TestFetch(t *testing.T) {
	fake := &fakeAWS{params: map[string]string{
		"/berth/s1/pki/ca.pem":       "CA\n",
		"/berth/s1/pki/node.pem":     "CERT\n",
		"/berth/s1/pki/node-key.pem": "KEY\n",
		"/berth/s1/pki/denied.pem":   "x",
	}, denyName: "/berth/s1/pki/denied.pem"}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	f := &Fetcher{IMDS: srv.URL, Endpoint: srv.URL, HTTP: srv.Client()}
	ctx := context.Background()

	tests := []struct {
		name     string
		files    []File
		wantErr  string
		notFound bool
	}{
		{name: "files with modes", files: []File{{Name: "ca.pem", Mode: 0o644}, {Name: "node.pem"}, {Name: "node-key.pem", Mode: 0o600}}},
		{name: "missing parameter", files: []File{{Name: "ca.pem"}, {Name: "gone.pem"}}, wantErr: "get parameter /berth/s1/pki/gone.pem", notFound: true},
		{name: "access denied", files: []File{{Name: "denied.pem"}}, wantErr: "AccessDeniedException"},
		{name: "path in name", files: []File{{Name: "../x"}}, wantErr: "want a plain name"},
		{name: "nothing", wantErr: "no files"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "pki")
			err := f.Fetch(ctx, "/berth/s1/pki", dir, tt.files)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one with %q", err, tt.wantErr)
				}
				if got := errors.Is(err, ErrNotFound); got != tt.notFound {
					t.Errorf("errors.Is(err, ErrNotFound) = %v, want %v", got, tt.notFound)
				}
				if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("a failed fetch made %s (stat: %v)", dir, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
				t.Errorf("dir %s: %v, mode %v, want 0700", dir, err, st.Mode().Perm())
			}
			for _, fl := range tt.files {
				p := filepath.Join(dir, fl.Name)
				got, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				if want := fake.params["/berth/s1/pki/"+fl.Name]; string(got) != want {
					t.Errorf("%s: got %q, want %q", fl.Name, got, want)
				}
				want := fl.Mode
				if want == 0 {
					want = 0o600
				}
				if st, _ := os.Stat(p); st.Mode().Perm() != want {
					t.Errorf("%s: mode %v, want %v", fl.Name, st.Mode().Perm(), want)
				}
			}
			if ents, _ := os.ReadDir(dir); len(ents) != len(tt.files) {
				t.Errorf("got %d entries in %s, want %d (no temporary files left)", len(ents), dir, len(tt.files))
			}
		})
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if len(fake.auths) == 0 {
		t.Fatal("no SSM calls")
	}
	for i, a := range fake.auths {
		if !authRE.MatchString(a) {
			t.Errorf("Authorization %q does not match %s", a, authRE)
		}
		if fake.tokens[i] != "session-token" {
			t.Errorf("X-Amz-Security-Token %q, want the role's session token", fake.tokens[i])
		}
	}
}

// TestFetchOverwrites replaces an existing file and its mode (rotation).
func TestFetchOverwrites(t *testing.T) {
	fake := &fakeAWS{params: map[string]string{"/p/k.pem": "NEW"}}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "k.pem"), []byte("OLD"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := &Fetcher{IMDS: srv.URL, Endpoint: srv.URL, HTTP: srv.Client(), Region: "eu-west-1"}
	if err := f.Fetch(context.Background(), "/p", dir, []File{{Name: "k.pem"}}); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "k.pem"))
	st, _ := os.Stat(filepath.Join(dir, "k.pem"))
	if string(got) != "NEW" || st.Mode().Perm() != 0o600 {
		t.Errorf("got %q mode %v, want %q mode 0600", got, st.Mode().Perm(), "NEW")
	}
}
