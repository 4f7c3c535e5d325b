package ssmfetch

import (
	"context"
	"net/http"
	"time"
)

// Sign adds Signature Version 4 headers to req, whose body is body, for
// service in region (AWS JSON APIs: a POST without a query string). Other
// AWS clients of berth (internal/ecr) sign with it.
func Sign(req *http.Request, body []byte, c Credentials, region, service string, now time.Time) {
	sign(req, body, c, region, service, now)
}

// InstanceRole returns the EC2 instance role's credentials and the
// instance's region through IMDSv2 at base (DefaultIMDS if empty).
func InstanceRole(ctx context.Context, client *http.Client, base string) (Credentials, string, error) {
	if client == nil {
		client = &http.Client{Timeout: defaultTimeout}
	}
	if base == "" {
		base = DefaultIMDS
	}
	m := &imds{base: base, client: client}
	if err := m.session(ctx); err != nil {
		return Credentials{}, "", err
	}
	region, err := m.region(ctx)
	if err != nil {
		return Credentials{}, "", err
	}
	c, err := m.credentials(ctx)
	return c, region, err
}
