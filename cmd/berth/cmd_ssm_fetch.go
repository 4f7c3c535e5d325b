package main

import (
	"context"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/berthproject/berth/internal/ssmfetch"
)

// SSMFetchOptions are the flags of "berth ssm-fetch".
type SSMFetchOptions struct {
	Prefix   string        // parameter path the names are under, e.g. /berth/STACK/pki (required)
	Dir      string        // directory the files are written to (default /etc/berth/pki)
	Region   string        // SSM region; empty: the instance's
	IMDS     string        // instance metadata base URL (default http://169.254.169.254)
	Endpoint string        // SSM base URL; empty: https://ssm.REGION.amazonaws.com
	Wait     time.Duration // retry failed fetches (every 5s) for this long; zero: try once
}

// AddFlags registers the flags.
func (o *SSMFetchOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.Prefix, "prefix", "", "SSM parameter path the names are under, e.g. /berth/STACK/pki (required)")
	f.StringVar(&o.Dir, "dir", "/etc/berth/pki", "directory to write the files to (made 0700 if missing)")
	f.StringVar(&o.Region, "region", "", "SSM region (default: the instance's, from the metadata service)")
	f.StringVar(&o.IMDS, "imds-endpoint", ssmfetch.DefaultIMDS, "instance metadata service URL")
	f.StringVar(&o.Endpoint, "ssm-endpoint", "", "SSM endpoint URL (default https://ssm.REGION.amazonaws.com)")
	f.DurationVar(&o.Wait, "wait", 0, "retry a failed fetch every 5s for this long (at boot the network or the role may not be ready)")
}

func newSSMFetchCommand(g *GlobalOptions) *cobra.Command {
	var opts SSMFetchOptions
	cmd := &cobra.Command{
		Use:   "ssm-fetch --prefix PATH NAME[:MODE]...",
		Short: "Write SSM SecureString parameters to files with the instance role's credentials",
		Long: `ssm-fetch reads the parameters PREFIX/NAME (decrypted) with the EC2 instance
role's credentials (IMDSv2, Signature Version 4; no aws CLI needed) and writes
each to DIR/NAME with MODE (octal, default 0600), through a temporary file and
a rename. It fetches every parameter before writing any file and never prints
their values. The nodes of cloudformation/berth.yaml run it at boot to install
etcd's certificates (docs/security.md).`,
		Example: "  berth ssm-fetch --prefix /berth/mystack/pki --dir /etc/berth/pki ca.pem:0644 berth-agent.pem berth-agent-key.pem",
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSSMFetch(cmd.Context(), g, opts, args)
		},
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}

// ssmFetchRetry is the pause between attempts with --wait.
var ssmFetchRetry = 5 * time.Second

// parseFileArgs parses NAME[:MODE] arguments.
func parseFileArgs(args []string) ([]ssmfetch.File, error) {
	files := make([]ssmfetch.File, 0, len(args))
	for _, a := range args {
		name, mode, hasMode := strings.Cut(a, ":")
		f := ssmfetch.File{Name: name}
		if hasMode {
			m, err := strconv.ParseUint(mode, 8, 32)
			if err != nil || m > 0o777 {
				return nil, fmt.Errorf("%s: mode must be octal permissions such as 0600", a)
			}
			f.Mode = fs.FileMode(m)
		}
		files = append(files, f)
	}
	return files, nil
}

func runSSMFetch(ctx context.Context, g *GlobalOptions, o SSMFetchOptions, args []string) error {
	if o.Prefix == "" || !strings.HasPrefix(o.Prefix, "/") {
		return usagef("ssm-fetch needs --prefix, a parameter path starting with /")
	}
	if len(args) == 0 {
		return usagef("ssm-fetch needs at least one NAME[:MODE]")
	}
	files, err := parseFileArgs(args)
	if err != nil {
		return usagef("%v", err)
	}
	if ctx == nil {
		ctx = context.Background()
	}
	f := &ssmfetch.Fetcher{IMDS: o.IMDS, Region: o.Region, Endpoint: o.Endpoint}
	deadline := time.Now().Add(o.Wait)
	for {
		err := f.Fetch(ctx, o.Prefix, o.Dir, files)
		if err == nil {
			break
		}
		if !time.Now().Before(deadline) {
			return err
		}
		fmt.Fprintf(g.stderr, "ssm-fetch: %v; retrying\n", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(ssmFetchRetry):
		}
	}
	fmt.Fprintf(g.stdout, "wrote %d files from %s to %s\n", len(files), o.Prefix, o.Dir)
	return nil
}
