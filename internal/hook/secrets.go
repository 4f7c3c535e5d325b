package hook

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/units"
)

// Files in an instance's secrets directory (units.SecretsDir): the env
// file and the registry auth file, in docker's config.json format, which
// "podman pull --authfile F" and "docker --config DIR pull" both read.
const (
	SecretsEnvFile  = units.SecretsEnvFile
	SecretsAuthFile = units.SecretsAuthFile
)

// Opener opens one of an app's sealed secrets (secret.Store.Open with the
// node's identities).
type Opener func(ctx context.Context, app, name string) ([]byte, error)

// RegistryLogin returns registry credentials for image as a docker
// config.json (the ECR token helper).
type RegistryLogin func(ctx context.Context, image string) ([]byte, error)

// Secrets is what an instance's pre-start hook writes on tmpfs.
type Secrets struct {
	// Dir is the instance's secrets directory (required), on tmpfs; its
	// parent is made 0711 (no listing) and Dir 0700.
	Dir string
	// Env maps variables to the app's secret names, written to
	// Dir/env as KEY=VALUE lines.
	Env map[string]string
	// PullSecret is the secret holding registry credentials (docker
	// config.json), written to Dir/config.json; "" for none.
	PullSecret string
	// Login, when set, writes Dir/config.json from it instead (aws:ecr).
	Login RegistryLogin
	// Image is the image Login logs in for.
	Image string
	// UID and GID own Dir and its files (the unit's User=, which reads the
	// env file in the exec runtime); -1 keeps the hook's own.
	UID, GID int
}

// ErrNotTmpfs is returned (wrapped) when a secrets directory would be on a
// disk: secrets are written only to memory.
var ErrNotTmpfs = errors.New("not on tmpfs")

// WriteSecrets opens the instance's secrets and writes them under s.Dir,
// replacing what a previous start left. Every secret is opened before any
// file is written; a failure names the variable and the secret, never a
// value.
func WriteSecrets(ctx context.Context, open Opener, app string, s Secrets) error {
	if s.Dir == "" || !filepath.IsAbs(s.Dir) {
		return fmt.Errorf("secrets directory %q: want an absolute path", s.Dir)
	}
	var env bytes.Buffer
	for _, k := range slices.Sorted(maps.Keys(s.Env)) {
		name := s.Env[k]
		v, err := open(ctx, app, name)
		if err != nil {
			return fmt.Errorf("env %s: %w", k, err)
		}
		if err := checkEnvValue(v); err != nil {
			return fmt.Errorf("env %s: secret %s %w", k, name, err)
		}
		env.WriteString(k + "=")
		env.Write(v)
		env.WriteByte('\n')
	}
	var auth []byte
	switch {
	case s.Login != nil:
		a, err := s.Login(ctx, s.Image)
		if err != nil {
			return fmt.Errorf("registry login for %s: %w", s.Image, err)
		}
		auth = a
	case s.PullSecret != "":
		a, err := open(ctx, app, s.PullSecret)
		if err != nil {
			return fmt.Errorf("pullSecret: %w", err)
		}
		if err := CheckDockerConfig(a); err != nil {
			return fmt.Errorf("pullSecret: secret %s: %w", s.PullSecret, err)
		}
		auth = a
	}
	if err := makeSecretsDir(s.Dir, s.UID, s.GID); err != nil {
		return err
	}
	if len(s.Env) > 0 {
		if err := writeSecretFile(filepath.Join(s.Dir, SecretsEnvFile), env.Bytes(), s.UID, s.GID); err != nil {
			return err
		}
	}
	if auth != nil {
		if err := writeSecretFile(filepath.Join(s.Dir, SecretsAuthFile), auth, s.UID, s.GID); err != nil {
			return err
		}
	}
	return nil
}

// checkEnvValue refuses what an env file line cannot carry.
func checkEnvValue(v []byte) error {
	switch {
	case bytes.IndexByte(v, 0) >= 0:
		return errors.New("holds a NUL byte, which no environment variable can carry")
	case bytes.ContainsAny(v, "\r\n"):
		return errors.New("holds a line break, which an env file cannot carry: store it single-line, or have the app read a file")
	}
	return nil
}

// CheckDockerConfig checks that b is a docker config.json with at least
// one registry under "auths" (what docker login and podman login write).
// Its errors never quote b.
func CheckDockerConfig(b []byte) error {
	var cfg struct {
		Auths map[string]struct {
			Auth     string `json:"auth"`
			Username string `json:"username"`
		} `json:"auths"`
		CredsStore  string          `json:"credsStore"`
		CredHelpers json.RawMessage `json:"credHelpers"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return errors.New(`is not a docker config.json (JSON like {"auths": {"registry.example.com": {"auth": "base64(user:password)"}}})`)
	}
	if len(cfg.Auths) == 0 {
		return errors.New(`has no "auths" entry: store the config.json that docker login or podman login writes`)
	}
	for host, a := range cfg.Auths {
		if a.Auth == "" && a.Username == "" {
			hint := ""
			if cfg.CredsStore != "" || len(cfg.CredHelpers) > 0 {
				hint = " (its credentials are in a credential helper, which nodes do not have)"
			}
			return fmt.Errorf(`has no credentials for %s%s: log in with docker --config DIR login or podman login --authfile FILE and store that file`, host, hint)
		}
	}
	return nil
}

// DockerConfig builds a docker config.json for one registry.
func DockerConfig(registry, user, password string) []byte {
	b, _ := json.Marshal(map[string]any{"auths": map[string]any{
		registry: map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + password))},
	}})
	return b
}

// tmpfs and ramfs keep files in memory only.
var memoryFS = []int64{unix.TMPFS_MAGIC, unix.RAMFS_MAGIC}

// makeSecretsDir makes dir's parent (0711, on tmpfs) and dir (0700).
func makeSecretsDir(dir string, uid, gid int) error {
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o711); err != nil {
		return err
	}
	var st unix.Statfs_t
	if err := unix.Statfs(parent, &st); err != nil {
		return fmt.Errorf("statfs %s: %w", parent, err)
	}
	if !slices.Contains(memoryFS, int64(st.Type)) {
		return fmt.Errorf("secrets directory %s is %w: secrets are written to memory only (systemd mounts /run as tmpfs; check the units' RunDir)", parent, ErrNotTmpfs)
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return err
	}
	return os.Lchown(dir, uid, gid)
}

// writeSecretFile writes data to name, mode 0600, through a new file and
// a rename.
func writeSecretFile(name string, data []byte, uid, gid int) error {
	tmp := name + ".tmp"
	os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chown(uid, gid)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", name, err)
	}
	return os.Rename(tmp, name)
}

// RemoveSecrets removes an instance's secrets directory (post-stop).
func RemoveSecrets(dir string) error {
	if dir == "" || !filepath.IsAbs(dir) || filepath.Clean(dir) == "/" {
		return fmt.Errorf("secrets directory %q: want an absolute path", dir)
	}
	return os.RemoveAll(dir)
}

// ReadSecretsEnv reads an env file written by WriteSecrets: KEY=VALUE
// lines taken literally (as docker's --env-file does: no quotes, no
// trimming of the value).
func ReadSecretsEnv(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var env []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, len(b)+1)
	for sc.Scan() {
		line := sc.Text()
		if k, _, ok := strings.Cut(line, "="); ok && k != "" {
			env = append(env, line)
		}
	}
	return env, sc.Err()
}
