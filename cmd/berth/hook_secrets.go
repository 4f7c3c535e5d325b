package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/ecr"
	"github.com/berthproject/berth/internal/hook"
	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/secret"
	"github.com/berthproject/berth/internal/spec"
)

// SecretHookOptions are the pre-start hook's flags for sealed secrets.
type SecretHookOptions struct {
	Dir        string   // the instance's secrets directory on tmpfs
	Env        []string // VAR=NAME: env variables from sealed secrets
	PullSecret string   // secret with registry credentials, or aws:ecr
	Image      string   // the image pulled (aws:ecr logs in to its registry)
	Owner      string   // user (name or uid[:gid]) owning the files
	Identity   string   // the node's identity file
	IMDS       string   // instance metadata URL (aws:ecr)
	ECR        string   // ECR API URL (aws:ecr; default the image's region's)
}

// AddFlags registers the flags.
func (o *SecretHookOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.Dir, "secrets-dir", "", "the instance's secrets directory on tmpfs (units render /run/berth/secrets/%p@%i)")
	f.StringArrayVar(&o.Env, "secret", nil, "VAR=NAME: write the app's sealed secret NAME as VAR to SECRETS-DIR/env (repeatable)")
	f.StringVar(&o.PullSecret, "pull-secret", "", "sealed secret with registry credentials (docker config.json) for SECRETS-DIR/config.json, or aws:ecr")
	f.StringVar(&o.Image, "image", "", "the image the unit pulls (for --pull-secret aws:ecr)")
	f.StringVar(&o.Owner, "owner", "", "user (name or uid[:gid]) that owns the files: the unit's User=, which reads them")
	f.StringVar(&o.Identity, "identity", envOr(secret.IdentityEnv, secret.DefaultIdentityFile), "the node's secrets identity file, mode 0600 (env "+secret.IdentityEnv+")")
	f.StringVar(&o.IMDS, "imds-endpoint", envOr("BERTH_IMDS_ENDPOINT", "http://169.254.169.254"), "instance metadata service URL, for aws:ecr")
	f.StringVar(&o.ECR, "ecr-endpoint", os.Getenv("BERTH_ECR_ENDPOINT"), "ECR API URL for aws:ecr (default https://api.ecr.REGION.amazonaws.com)")
}

func (o *SecretHookOptions) used() bool { return len(o.Env) > 0 || o.PullSecret != "" }

// write opens the secrets and writes them for the instance.
func (o *SecretHookOptions) write(ctx context.Context, kv clientv3.KV, k registry.Keys, app string, log logrus.FieldLogger) error {
	if !o.used() {
		return nil
	}
	if o.Dir == "" {
		return usagef("--secret and --pull-secret need --secrets-dir")
	}
	s := hook.Secrets{Dir: o.Dir, Env: map[string]string{}, Image: o.Image, UID: -1, GID: -1}
	for _, e := range o.Env {
		k, name, ok := strings.Cut(e, "=")
		if !ok || k == "" {
			return usagef("--secret %q: want VAR=NAME", e)
		}
		if err := spec.CheckSecretName(name); err != nil {
			return usagef("--secret %s: %v", k, err)
		}
		s.Env[k] = name
	}
	if o.Owner != "" {
		uid, gid, err := lookupOwner(o.Owner)
		if err != nil {
			return usagef("--owner: %v", err)
		}
		s.UID, s.GID = uid, gid
	}
	switch o.PullSecret {
	case "":
	case spec.PullSecretECR:
		c := &ecr.Client{IMDS: o.IMDS, Endpoint: o.ECR}
		s.Login = func(ctx context.Context, image string) ([]byte, error) {
			t, err := c.Login(ctx, image)
			if err != nil {
				return nil, err
			}
			return t.DockerConfig(), nil
		}
	default:
		s.PullSecret = o.PullSecret
	}
	var open hook.Opener
	if len(s.Env) > 0 || s.PullSecret != "" {
		ids, err := secret.LoadIdentities(o.Identity)
		if err != nil {
			return err
		}
		st := &secret.Store{KV: kv, Keys: k}
		open = func(ctx context.Context, app, name string) ([]byte, error) { return st.Open(ctx, app, name, ids) }
	}
	if err := hook.WriteSecrets(ctx, open, app, s); err != nil {
		return err
	}
	fields := logrus.Fields{"dir": o.Dir, "env": len(s.Env)}
	if o.PullSecret != "" {
		fields["pull_secret"] = o.PullSecret
	}
	if s.PullSecret != "" {
		checkPullRegistry(filepath.Join(o.Dir, hook.SecretsAuthFile), o.PullSecret, o.Image, fields, log)
	}
	log.WithFields(fields).Info("secrets written")
	return nil
}

// checkPullRegistry names, in the pre-start hook's log, the registries the
// written auth file has credentials for (never the credentials), and warns
// when the image's registry is not one of them: the pull then goes without
// credentials and the registry's refusal alone would not say why.
func checkPullRegistry(authFile, pullSecret, image string, fields logrus.Fields, log logrus.FieldLogger) {
	b, err := os.ReadFile(authFile)
	if err != nil {
		return
	}
	regs := hook.AuthRegistries(b)
	fields["registries"] = strings.Join(regs, ",")
	if image == "" {
		return
	}
	if reg := hook.ImageRegistry(image); !hook.HasRegistry(regs, reg) {
		log.WithFields(logrus.Fields{"pull_secret": pullSecret, "image": image, "registry": reg, "registries": strings.Join(regs, ",")}).
			Warn("pullSecret has no credentials for the image's registry: the pull goes without them; put a config.json with an auths entry for " + reg)
	}
}

// lookupOwner reads a user name or uid[:gid].
func lookupOwner(s string) (uid, gid int, err error) {
	name, group, hasGroup := strings.Cut(s, ":")
	if n, err := strconv.Atoi(name); err == nil {
		uid, gid = n, n
		if hasGroup {
			if gid, err = strconv.Atoi(group); err != nil {
				return 0, 0, fmt.Errorf("%q: the group must be a number", s)
			}
		}
		return uid, gid, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return 0, 0, err
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid, nil
}

// newHookExecCommand is "berth hook exec": the exec runtime's ExecStart
// for apps with secrets. It reads the env file the pre-start hook wrote
// and replaces itself with the app (same process), so the values are in
// the app's environment and nowhere else: not in the unit, not on a
// command line, not in the hooks' environments.
func newHookExecCommand(g *GlobalOptions) *cobra.Command {
	var envFile string
	cmd := &cobra.Command{
		Use:   "exec --env-file FILE -- COMMAND [ARGS...]",
		Short: "Run an exec-runtime app with the environment of its secrets file (the unit's ExecStart)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if envFile == "" {
				return usagef("--env-file is required")
			}
			env, err := hook.ReadSecretsEnv(envFile)
			if err != nil {
				return fmt.Errorf("secrets env file: %w (the pre-start hook writes it)", err)
			}
			path, err := exec.LookPath(args[0])
			if err != nil {
				return err
			}
			// The app's own settings (the unit's Environment=) come
			// first; the secrets are added after them.
			return syscall.Exec(path, args, append(os.Environ(), env...))
		},
	}
	cmd.Flags().SetInterspersed(false)
	cmd.Flags().StringVar(&envFile, "env-file", "", "secrets env file written by the pre-start hook (required)")
	return cmd
}

// removeSecrets is post-stop's first step, before etcd is reached.
func removeSecrets(g *GlobalOptions, dir string) {
	if dir == "" {
		return
	}
	if err := hook.RemoveSecrets(dir); err != nil {
		fmt.Fprintf(g.stderr, "remove secrets: %v\n", err)
	}
}
