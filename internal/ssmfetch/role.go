package ssmfetch

import (
	"context"
	"net/http"
)

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
