package ecr

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/berthproject/berth/internal/spec"
	"github.com/berthproject/berth/internal/ssmfetch"
)

// Target is the X-Amz-Target of ECR's GetAuthorizationToken.
const Target = "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken"

// Client logs in to ECR with the instance role.
type Client struct {
	// IMDS is the instance metadata service's base URL (default
	// ssmfetch.DefaultIMDS).
	IMDS string
	// Endpoint is ECR's API base URL; empty means
	// https://api.ecr.REGION.amazonaws.com for the image's region.
	Endpoint string
	// HTTP is the client; nil means one with a 10s timeout.
	HTTP *http.Client
	// Now is the clock for signatures; nil means time.Now.
	Now func() time.Time
}

// Token is an ECR registry login.
type Token struct {
	Registry string    // registry host, ACCOUNT.dkr.ecr.REGION.amazonaws.com
	User     string    // "AWS"
	Password string    // valid until Expires (12 hours)
	Expires  time.Time // zero if ECR did not say
}

// DockerConfig is the token as a docker config.json.
func (t Token) DockerConfig() []byte {
	b, _ := json.Marshal(map[string]any{"auths": map[string]any{
		t.Registry: map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(t.User + ":" + t.Password))},
	}})
	return b
}

// Login returns a token for the registry of image, an ECR image reference.
func (c *Client) Login(ctx context.Context, image string) (Token, error) {
	host, region, ok := spec.ECRRegistry(image)
	if !ok {
		return Token{}, fmt.Errorf("image %q is not in ECR (ACCOUNT.dkr.ecr.REGION.amazonaws.com/NAME)", image)
	}
	client := c.HTTP
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	creds, _, err := ssmfetch.InstanceRole(ctx, client, c.IMDS)
	if err != nil {
		return Token{}, fmt.Errorf("instance role: %w", err)
	}
	endpoint := c.Endpoint
	if endpoint == "" {
		endpoint = "https://api.ecr." + region + ".amazonaws.com"
		if strings.HasSuffix(host, ".cn") {
			endpoint += ".cn"
		}
	}
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	body := []byte(`{}`)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(endpoint, "/")+"/", bytes.NewReader(body))
	if err != nil {
		return Token{}, err
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", Target)
	ssmfetch.Sign(req, body, creds, region, "ecr", now())
	resp, err := client.Do(req)
	if err != nil {
		return Token{}, fmt.Errorf("ecr GetAuthorizationToken: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Token{}, err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Type    string `json:"__type"`
			Message string `json:"message"`
		}
		_ = json.Unmarshal(raw, &e)
		return Token{}, fmt.Errorf("ecr GetAuthorizationToken: %s %s %s (the instance role needs ecr:GetAuthorizationToken)", resp.Status, e.Type, e.Message)
	}
	var out struct {
		AuthorizationData []struct {
			AuthorizationToken string  `json:"authorizationToken"`
			ExpiresAt          float64 `json:"expiresAt"`
			ProxyEndpoint      string  `json:"proxyEndpoint"`
		} `json:"authorizationData"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || len(out.AuthorizationData) == 0 {
		return Token{}, errors.New("ecr GetAuthorizationToken: an answer without authorizationData")
	}
	d := out.AuthorizationData[0]
	dec, err := base64.StdEncoding.DecodeString(d.AuthorizationToken)
	if err != nil {
		return Token{}, errors.New("ecr GetAuthorizationToken: the token is not base64")
	}
	user, pass, ok := strings.Cut(string(dec), ":")
	if !ok {
		return Token{}, errors.New("ecr GetAuthorizationToken: the token is not user:password")
	}
	t := Token{Registry: host, User: user, Password: pass}
	if d.ExpiresAt > 0 {
		t.Expires = time.Unix(int64(d.ExpiresAt), 0).UTC()
	}
	return t, nil
}
