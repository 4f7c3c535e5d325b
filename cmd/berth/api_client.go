package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// APIClientOptions are the flags of the views that can read from berth's
// HTTP API instead of etcd (status, routes).
type APIClientOptions struct {
	URL   string // the API's base URL; empty: read etcd
	Token string // bearer token (env BERTH_API_TOKEN)
}

// AddFlags registers the flags.
func (o *APIClientOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.URL, "api", os.Getenv("BERTH_API"), "read from berth's HTTP API at this URL (e.g. http://127.0.0.1:9090) instead of etcd; the token comes from BERTH_API_TOKEN (env BERTH_API)")
	o.Token = os.Getenv("BERTH_API_TOKEN")
}

// viaAPI gets path from the API, decodes its rows and prints them.
func viaAPI[T any](ctx context.Context, g *GlobalOptions, o APIClientOptions, output, path string, print func(io.Writer, []T, bool) error) error {
	if output != "table" && output != "json" {
		return usagef("--output must be table or json, got %q", output)
	}
	base, err := url.Parse(o.URL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return usagef("--api must be an http(s) URL such as http://127.0.0.1:9090, got %q", o.URL)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base.String(), "/")+path, nil)
	if err != nil {
		return err
	}
	if o.Token != "" {
		req.Header.Set("Authorization", "Bearer "+o.Token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("berth api at %s: %w (is berth api or berth up running?)", o.URL, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("berth api at %s: %w", o.URL, err)
	}
	if res.StatusCode != http.StatusOK {
		var e struct {
			Error struct{ Message string }
		}
		json.Unmarshal(body, &e)
		if res.StatusCode == http.StatusUnauthorized && o.Token == "" {
			return fmt.Errorf("berth api at %s: %s (set BERTH_API_TOKEN to a read token: berth token create --scope read)", o.URL, e.Error.Message)
		}
		return fmt.Errorf("berth api at %s: %s: %s", o.URL, res.Status, e.Error.Message)
	}
	var rows []T
	if err := json.Unmarshal(body, &rows); err != nil {
		return fmt.Errorf("berth api at %s: decode %s: %w", o.URL, path, err)
	}
	return print(g.stdout, rows, output == "json")
}
