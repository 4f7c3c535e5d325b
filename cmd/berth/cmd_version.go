package main

import (
	"encoding/json"
	"fmt"
	"runtime"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/berthproject/berth/internal/buildinfo"
)

// VersionOptions are the flags of "berth version".
type VersionOptions struct {
	Output string // "text" (default) or "json"
}

// AddFlags registers the flags.
func (o *VersionOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVarP(&o.Output, "output", "o", "text", "output format: text or json")
}

func newVersionCommand(g *GlobalOptions) *cobra.Command {
	var opts VersionOptions
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print berth's version and commit",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runVersion(g, opts)
		},
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}

func runVersion(g *GlobalOptions, opts VersionOptions) error {
	v := buildinfo.SemVer()
	info := map[string]string{"version": v.String(), "commit": buildinfo.CommitOrUnknown(), "go": runtime.Version()}
	switch opts.Output {
	case "json":
		return json.NewEncoder(g.stdout).Encode(info)
	case "text":
		_, err := fmt.Fprintf(g.stdout, "berth %s (commit %s, %s)\n", info["version"], info["commit"], info["go"])
		return err
	}
	return usagef("--output must be text or json, got %q", opts.Output)
}
