package ssmfetch

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// DefaultIMDS is the instance metadata service's address.
const DefaultIMDS = "http://169.254.169.254"

// Credentials are an instance role's temporary credentials.
type Credentials struct {
	AccessKeyID     string `json:"AccessKeyId"`
	SecretAccessKey string `json:"SecretAccessKey"`
	Token           string `json:"Token"`
	Expiration      string `json:"Expiration"` // RFC 3339, informational
}

// imds is an IMDSv2 session: a token taken once, sent with every GET.
type imds struct {
	base   string
	client *http.Client
	token  string
}

func (m *imds) do(ctx context.Context, method, path string, hdr map[string]string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(m.base, "/")+path, nil)
	if err != nil {
		return "", err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if m.token != "" {
		req.Header.Set("X-aws-ec2-metadata-token", m.token)
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("instance metadata %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", fmt.Errorf("instance metadata %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("instance metadata %s: %s", path, resp.Status)
	}
	return strings.TrimSpace(string(body)), nil
}

// session takes an IMDSv2 token (valid 6 hours).
func (m *imds) session(ctx context.Context) error {
	tok, err := m.do(ctx, http.MethodPut, "/latest/api/token", map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": "21600"})
	if err != nil {
		return err
	}
	m.token = tok
	return nil
}

func (m *imds) region(ctx context.Context) (string, error) {
	return m.do(ctx, http.MethodGet, "/latest/meta-data/placement/region", nil)
}

// credentials reads the instance role's credentials; the role's name is the
// first line of the security-credentials listing.
func (m *imds) credentials(ctx context.Context) (Credentials, error) {
	const dir = "/latest/meta-data/iam/security-credentials/"
	roles, err := m.do(ctx, http.MethodGet, dir, nil)
	if err != nil {
		return Credentials{}, err
	}
	role, _, _ := strings.Cut(roles, "\n")
	if role == "" {
		return Credentials{}, fmt.Errorf("instance metadata: no instance role attached")
	}
	raw, err := m.do(ctx, http.MethodGet, dir+role, nil)
	if err != nil {
		return Credentials{}, err
	}
	var c Credentials
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		return Credentials{}, fmt.Errorf("decode credentials of role %s: %w", role, err)
	}
	if c.AccessKeyID == "" || c.SecretAccessKey == "" {
		return Credentials{}, fmt.Errorf("instance metadata: role %s gave no credentials", role)
	}
	return c, nil
}

// defaultTimeout bounds one HTTP call.
const defaultTimeout = 10 * time.Second

// InstanceCredentials returns the credentials of the EC2 instance role
// through the instance metadata service at base (DefaultIMDS when empty),
// IMDSv2. client nil: a client with a 10s timeout.
func InstanceCredentials(ctx context.Context, client *http.Client, base string) (Credentials, error) {
	if client == nil {
		client = &http.Client{Timeout: defaultTimeout}
	}
	if base == "" {
		base = DefaultIMDS
	}
	m := &imds{base: base, client: client}
	if err := m.session(ctx); err != nil {
		return Credentials{}, err
	}
	return m.credentials(ctx)
}
