package spec

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// SecretPrefix starts an env value that refers to a sealed secret:
// "secret:db-password" is replaced, on the node, by the value of the app's
// sealed secret db-password (docs/secrets.md). The spec, the rendered unit
// and the app record in etcd keep the reference, never the value.
const SecretPrefix = "secret:"

// PullSecretECR is the pullSecret value that logs in to Amazon ECR with
// the node's instance role instead of a sealed secret. A secret name has
// no ':', so it names no secret.
const PullSecretECR = "aws:ecr"

// MaxSecretName bounds the length of a secret's name.
const MaxSecretName = 128

var reSecretName = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$`)

// ErrSecretName is returned (wrapped) for a name that cannot name a secret.
var ErrSecretName = errors.New("invalid secret name")

// CheckSecretName returns nil if name can name a sealed secret: 1 to 128
// letters, digits, '.', '_' and '-', starting and ending with a letter or
// digit (it is an etcd key segment and a file name).
func CheckSecretName(name string) error {
	if len(name) > MaxSecretName || !reSecretName.MatchString(name) || strings.Contains(name, "..") {
		return fmt.Errorf("%w %q: use 1-%d letters, digits, '.', '_' and '-', starting and ending with a letter or digit", ErrSecretName, name, MaxSecretName)
	}
	return nil
}

// ParseSecretRef reads an env value. A value starting with "secret:" is a
// reference: ref is true and name is the secret's name, or err says why the
// name is not valid. Any other value is a literal (ref false, err nil).
func ParseSecretRef(value string) (name string, ref bool, err error) {
	name, ref = strings.CutPrefix(value, SecretPrefix)
	if !ref {
		return "", false, nil
	}
	if err := CheckSecretName(name); err != nil {
		return "", true, err
	}
	return name, true, nil
}

// SecretEnv returns the env variables whose values are secret references,
// variable → secret name, and LiteralEnv the others. Both assume a valid
// spec.
func (a *App) SecretEnv() map[string]string {
	out := map[string]string{}
	for k, v := range a.Env {
		if name, ref, err := ParseSecretRef(v); ref && err == nil {
			out[k] = name
		}
	}
	return out
}

// LiteralEnv returns the env variables that are not secret references.
func (a *App) LiteralEnv() map[string]string {
	out := map[string]string{}
	for k, v := range a.Env {
		if _, ref, _ := ParseSecretRef(v); !ref {
			out[k] = v
		}
	}
	return out
}

// SecretNames returns the names of every sealed secret the app uses (env
// references and pullSecret), sorted, each once.
func (a *App) SecretNames() []string {
	set := map[string]string{}
	for _, name := range a.SecretEnv() {
		set[name] = name
	}
	if a.PullSecret != "" && a.PullSecret != PullSecretECR {
		set[a.PullSecret] = a.PullSecret
	}
	return sortedKeys(set)
}

// UsesSecrets reports whether the app needs its node to open sealed
// secrets or log in to a registry before it starts.
func (a *App) UsesSecrets() bool { return len(a.SecretEnv()) > 0 || a.PullSecret != "" }

// reECRHost is an ECR registry host: ACCOUNT.dkr.ecr.REGION.amazonaws.com
// (or .amazonaws.com.cn).
var reECRHost = regexp.MustCompile(`^[0-9]{12}\.dkr\.ecr(-fips)?\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$`)

// ECRRegistry returns the registry host and region of an ECR image
// reference ("123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:1"), or
// ok false when the image is not in ECR.
func ECRRegistry(image string) (host, region string, ok bool) {
	host, _, found := strings.Cut(image, "/")
	if !found {
		return "", "", false
	}
	m := reECRHost.FindStringSubmatch(host)
	if m == nil {
		return "", "", false
	}
	return host, m[2], true
}

func (a *App) validateSecrets(es *Errors) {
	for _, k := range sortedKeys(a.Env) {
		if _, ref, err := ParseSecretRef(a.Env[k]); ref && err != nil {
			es.add(joinPath("env", k), "%v (a value starting with %q names a sealed secret: berth secret put %s NAME)", err, SecretPrefix, a.Name)
		}
	}
	p := a.PullSecret
	if p == "" {
		return
	}
	if a.Runtime == RuntimeExec {
		es.add("pullSecret", "is for container runtimes: runtime exec pulls no image")
		return
	}
	if a.Pull == PullNever {
		es.add("pullSecret", "is unused with pull: never; drop it or pull the image")
	}
	if p == PullSecretECR {
		if _, _, ok := ECRRegistry(a.Image); !ok {
			es.add("pullSecret", "%s logs in to Amazon ECR, but image %q is not in ECR (ACCOUNT.dkr.ecr.REGION.amazonaws.com/NAME)", PullSecretECR, a.Image)
		}
		return
	}
	if err := CheckSecretName(p); err != nil {
		es.add("pullSecret", "%v; name a sealed secret holding a docker config.json, or use %s", err, PullSecretECR)
	}
}
