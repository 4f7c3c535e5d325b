package ssmfetch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// File is one parameter to install: the parameter PREFIX/Name is written to
// DIR/Name with Mode.
type File struct {
	Name string      // parameter name under the prefix, and file name; no "/" (required)
	Mode fs.FileMode // file mode; zero means 0600
}

// Fetcher fetches parameters with the instance role's credentials.
type Fetcher struct {
	// IMDS is the instance metadata service's base URL; empty means DefaultIMDS.
	IMDS string
	// Region is the SSM region; empty means the instance's (from IMDS).
	Region string
	// Endpoint is the SSM endpoint's base URL; empty means
	// https://ssm.REGION.amazonaws.com.
	Endpoint string
	// HTTP is the client for IMDS and SSM; nil means one with a 10s timeout.
	HTTP *http.Client
	// Now is the clock for signatures; nil means time.Now.
	Now func() time.Time
}

// ErrNotFound is returned (wrapped) when a parameter does not exist.
var ErrNotFound = errors.New("parameter not found")

// Fetch installs files from the parameters PREFIX/NAME into dir (made 0700
// if missing), each written to a temporary file with its mode, then renamed:
// a file is either the old or the new one, never half written. Values are
// never logged. It fetches all parameters before writing any file.
func (f *Fetcher) Fetch(ctx context.Context, prefix, dir string, files []File) error {
	if len(files) == 0 {
		return errors.New("no files to fetch")
	}
	for _, fl := range files {
		if fl.Name == "" || fl.Name != filepath.Base(fl.Name) || fl.Name == "." || fl.Name == ".." {
			return fmt.Errorf("file name %q: want a plain name", fl.Name)
		}
	}
	client := f.HTTP
	if client == nil {
		client = &http.Client{Timeout: defaultTimeout}
	}
	m := &imds{base: f.IMDS, client: client}
	if m.base == "" {
		m.base = DefaultIMDS
	}
	if err := m.session(ctx); err != nil {
		return err
	}
	region := f.Region
	if region == "" {
		r, err := m.region(ctx)
		if err != nil {
			return err
		}
		region = r
	}
	creds, err := m.credentials(ctx)
	if err != nil {
		return err
	}
	endpoint := f.Endpoint
	if endpoint == "" {
		endpoint = "https://ssm." + region + ".amazonaws.com"
	}
	now := f.Now
	if now == nil {
		now = time.Now
	}
	values := make([][]byte, len(files))
	for i, fl := range files {
		name := path.Join(prefix, fl.Name)
		v, err := getParameter(ctx, client, endpoint, region, creds, now(), name)
		if err != nil {
			return fmt.Errorf("get parameter %s: %w", name, err)
		}
		values[i] = v
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for i, fl := range files {
		mode := fl.Mode
		if mode == 0 {
			mode = 0o600
		}
		if err := writeFile(filepath.Join(dir, fl.Name), values[i], mode); err != nil {
			return err
		}
	}
	return nil
}

// writeFile writes data to name with mode through a temporary file and a rename.
func writeFile(name string, data []byte, mode fs.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after the rename: no such file
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), name)
}

// getParameter calls SSM's GetParameter with decryption.
func getParameter(ctx context.Context, client *http.Client, endpoint, region string, c Credentials, now time.Time, name string) ([]byte, error) {
	body, err := json.Marshal(map[string]any{"Name": name, "WithDecryption": true})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint+"/", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "AmazonSSM.GetParameter")
	sign(req, body, c, region, "ssm", now)
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Type    string `json:"__type"`
			Message string `json:"message"`
		}
		_ = json.Unmarshal(raw, &e)
		if strings.HasSuffix(e.Type, "ParameterNotFound") {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("%s: %s %s", resp.Status, e.Type, e.Message)
	}
	var out struct {
		Parameter struct {
			Value string `json:"Value"`
		} `json:"Parameter"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("decode answer: %w", err)
	}
	return []byte(out.Parameter.Value), nil
}
