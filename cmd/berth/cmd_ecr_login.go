package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/berthproject/berth/internal/ecr"
	"github.com/berthproject/berth/internal/ssmfetch"
)

// ECRLoginOptions are the flags of "berth ecr-login".
type ECRLoginOptions struct {
	AuthFile string // where the docker config.json goes (required)
	IMDS     string // instance metadata URL
	Endpoint string // ECR API URL; empty: the image's region's
}

// AddFlags registers the flags.
func (o *ECRLoginOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.AuthFile, "auth-file", "", "write the docker config.json here, mode 0600 (required; podman --authfile F, docker --config DIR with F = DIR/config.json)")
	f.StringVar(&o.IMDS, "imds-endpoint", envOr("BERTH_IMDS_ENDPOINT", ssmfetch.DefaultIMDS), "instance metadata service URL")
	f.StringVar(&o.Endpoint, "ecr-endpoint", os.Getenv("BERTH_ECR_ENDPOINT"), "ECR API URL (default https://api.ecr.REGION.amazonaws.com)")
}

func newECRLoginCommand(g *GlobalOptions) *cobra.Command {
	var opts ECRLoginOptions
	cmd := &cobra.Command{
		Use:   "ecr-login IMAGE --auth-file FILE",
		Short: "Log in to an image's Amazon ECR registry with the instance role; write a docker config.json",
		Long: `ecr-login calls ECR's GetAuthorizationToken with the EC2 instance role's
credentials (IMDSv2, Signature Version 4) and writes a docker config.json for
the image's registry to --auth-file with mode 0600. The token is valid for 12
hours and is never printed. Units of apps with "pullSecret: aws:ecr" do the same
in their pre-start hook, per start, on tmpfs (docs/secrets.md); ecr-login is for
pulls outside berth's units. The role needs ecr:GetAuthorizationToken,
ecr:BatchGetImage and ecr:GetDownloadUrlForLayer.`,
		Example: "  berth ecr-login 123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop:1 --auth-file /run/berth/ecr/config.json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.AuthFile == "" {
				return usagef("--auth-file is required")
			}
			c := &ecr.Client{IMDS: opts.IMDS, Endpoint: opts.Endpoint}
			tok, err := c.Login(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Dir(opts.AuthFile), 0o700); err != nil {
				return err
			}
			tmp := opts.AuthFile + ".tmp"
			os.Remove(tmp)
			if err := os.WriteFile(tmp, tok.DockerConfig(), 0o600); err != nil {
				return err
			}
			if err := os.Rename(tmp, opts.AuthFile); err != nil {
				return err
			}
			exp := "unknown"
			if !tok.Expires.IsZero() {
				exp = tok.Expires.Format(time.RFC3339)
			}
			fmt.Fprintf(g.stdout, "wrote credentials for %s to %s (valid until %s)\n", tok.Registry, opts.AuthFile, exp)
			return nil
		},
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}
