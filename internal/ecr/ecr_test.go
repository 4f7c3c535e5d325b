package ecr

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/ssmfetch"
)

const image = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop:1.2"

// fakeAWS is an IMDSv2 and ECR's JSON API (GetAuthorizationToken) in one
// server, checking the request's signature as ECR does.
type fakeAWS struct {
	mu     sync.Mutex
	calls  int
	deny   bool
	scopes []string
}

var creds = ssmfetch.Credentials{AccessKeyID: "ASIAEXAMPLE", SecretAccessKey: "role-secret", Token: "session-token"}

func (f *fakeAWS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch r.URL.Path {
	case "/latest/api/token":
		io.WriteString(w, "imds-token")
		return
	case "/latest/meta-data/placement/region":
		io.WriteString(w, "eu-west-1")
		return
	case "/latest/meta-data/iam/security-credentials/":
		io.WriteString(w, "node-role\n")
		return
	case "/latest/meta-data/iam/security-credentials/node-role":
		json.NewEncoder(w).Encode(map[string]string{"AccessKeyId": creds.AccessKeyID, "SecretAccessKey": creds.SecretAccessKey, "Token": creds.Token})
		return
	}
	body, _ := io.ReadAll(r.Body)
	if r.Method != http.MethodPost || r.URL.Path != "/" || r.Header.Get("X-Amz-Target") != Target || r.Header.Get("Content-Type") != "application/x-amz-json-1.1" {
		http.Error(w, `{"__type":"UnknownOperationException"}`, http.StatusBadRequest)
		return
	}
	// Verify the signature: sign the same request again and compare.
	date, _ := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	check, _ := http.NewRequest(r.Method, "http://"+r.Host+"/", bytes.NewReader(body))
	check.Header.Set("Content-Type", r.Header.Get("Content-Type"))
	check.Header.Set("X-Amz-Target", r.Header.Get("X-Amz-Target"))
	ssmfetch.Sign(check, body, creds, "eu-west-1", "ecr", date)
	auth := r.Header.Get("Authorization")
	f.scopes = append(f.scopes, auth)
	if auth != check.Header.Get("Authorization") || r.Header.Get("X-Amz-Security-Token") != creds.Token {
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `{"__type":"InvalidSignatureException","message":"signature does not match"}`)
		return
	}
	if f.deny {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"__type":"AccessDeniedException","message":"not authorized to perform: ecr:GetAuthorizationToken"}`)
		return
	}
	f.calls++
	tok := base64.StdEncoding.EncodeToString([]byte("AWS:ecr-password-123"))
	json.NewEncoder(w).Encode(map[string]any{"authorizationData": []map[string]any{{
		"authorizationToken": tok, "expiresAt": 1.9e9, "proxyEndpoint": "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com"}}})
}

func TestLogin(t *testing.T) {
	f := &fakeAWS{}
	srv := httptest.NewServer(f)
	defer srv.Close()
	c := &Client{IMDS: srv.URL, Endpoint: srv.URL}
	tok, err := c.Login(context.Background(), image)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Registry != "123456789012.dkr.ecr.eu-west-1.amazonaws.com" || tok.User != "AWS" || tok.Password != "ecr-password-123" || tok.Expires.Unix() != 1.9e9 {
		t.Errorf("token %+v", tok)
	}
	if !strings.Contains(f.scopes[0], "/eu-west-1/ecr/aws4_request") {
		t.Errorf("credential scope %s, want eu-west-1/ecr", f.scopes[0])
	}
	var cfg struct {
		Auths map[string]struct{ Auth string } `json:"auths"`
	}
	if err := json.Unmarshal(tok.DockerConfig(), &cfg); err != nil {
		t.Fatal(err)
	}
	got, _ := base64.StdEncoding.DecodeString(cfg.Auths[tok.Registry].Auth)
	if string(got) != "AWS:ecr-password-123" {
		t.Errorf("config.json auth for %s: %q", tok.Registry, got)
	}

	f.deny = true
	_, err = c.Login(context.Background(), image)
	if err == nil || !strings.Contains(err.Error(), "AccessDeniedException") || !strings.Contains(err.Error(), "ecr:GetAuthorizationToken") {
		t.Errorf("denied: %v", err)
	}
	if _, err := c.Login(context.Background(), "nginx:1"); err == nil || !strings.Contains(err.Error(), "not in ECR") {
		t.Errorf("non-ECR image: %v", err)
	}
}

// TestLoginBadSignature: a request signed with other credentials is refused
// by the fake, so the test above proves the client signs correctly.
func TestLoginBadSignature(t *testing.T) {
	f := &fakeAWS{}
	srv := httptest.NewServer(f)
	defer srv.Close()
	body := []byte(`{}`)
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", Target)
	other := creds
	other.SecretAccessKey = "wrong"
	ssmfetch.Sign(req, body, other, "eu-west-1", "ecr", time.Now())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("a wrongly signed request got %s", resp.Status)
	}
}
