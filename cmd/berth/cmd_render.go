package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/berthproject/berth/internal/spec"
	"github.com/berthproject/berth/units"
)

// RenderOptions are the flags of "berth render".
type RenderOptions struct {
	Output   string // directory to write to, or "-" for stdout (required)
	Platform bool   // also render the platform's own units
	Diff     bool   // show what would change in Output instead of writing
	Check    bool   // verify every unit with systemd-analyze verify
	Berth    string // path of the berth binary on the nodes
	// PassivateDriver is the driver berth-passivate.service runs with.
	PassivateDriver string
	// Ignition renders a node's Ignition config (server or worker) instead
	// of unit files.
	Ignition string
	Ign      units.IgnitionOptions
}

// AddFlags registers the flags.
func (o *RenderOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVarP(&o.Output, "output", "o", "", "directory to write the units to, or - for stdout (required)")
	f.BoolVar(&o.Platform, "platform", false, "also render the platform units (router, dnsd, agent, passivation timer)")
	f.BoolVar(&o.Diff, "diff", false, "print a diff of what would change in the output directory; write nothing")
	f.BoolVar(&o.Check, "check", false, "verify every unit with systemd-analyze verify (any warning fails)")
	f.StringVar(&o.Berth, "berth-path", "/opt/bin/berth", "path of the berth binary on the nodes")
	f.StringVar(&o.PassivateDriver, "passivate-driver", "systemd", "with --platform: how the passivation timer's service stops idle apps: systemd (node agents), fleet (fleetctl stop, for units fleet schedules) or berth (units berth fleet places)")
	f.StringVar(&o.Ignition, "ignition", "", "render the Ignition config of a node instead: server or worker (Flatcar, spec 3.4)")
	f.StringVar(&o.Ign.BerthURL, "berth-url", "", "with --ignition: URL nodes download the berth binary from")
	f.StringVar(&o.Ign.BerthHash, "berth-hash", "", "with --ignition: sha512-<hex> (or sha256-<hex>) of the binary at --berth-url, verified by Ignition")
	f.StringVar(&o.Ign.EtcdEndpoints, "node-etcd-endpoints", "http://127.0.0.1:2379", "with --ignition: BERTH_ETCD_ENDPOINTS of the node")
	f.StringVar(&o.Ign.Stack, "stack", "", "with --ignition server: stack name tagging the etcd member interfaces")
	f.StringVar(&o.Ign.Region, "region", "", "with --ignition server: AWS region")
	f.StringVar(&o.Ign.EtcdCluster, "etcd-cluster", "", "with --ignition server: etcd initial cluster (etcd1=http://IP:2380,...; https:// with --pki-prefix)")
	f.StringVar(&o.Ign.PKIPrefix, "pki-prefix", "", "with --ignition: SSM parameter path of etcd's TLS files (/berth/STACK): etcd on TLS with client certificates and auth (docs/security.md)")
	f.BoolVar(&o.Ign.ACME, "ignition-acme", false, "with --ignition and --pki-prefix: the routers' ACME settings and key from PREFIX/acme/ in SSM, the key through LoadCredential (docs/cloud.md)")
}

func newRenderCommand(g *GlobalOptions) *cobra.Command {
	var opts RenderOptions
	cmd := &cobra.Command{
		Use:   "render SPEC... -o DIR",
		Short: "Render app specs into fleet/systemd unit files",
		Long: `Render turns app specs (YAML, see docs/spec.md) into unit files: one template
unit <app>@.service per app, ready for "fleetctl submit" / "fleetctl start
<app>@{1..3}" or "systemctl link" / "systemctl start". With --platform it also
renders berth's own units. Every spec is parsed and every unit rendered before
anything is written; on any error nothing is written.`,
		Example: `  berth render examples/paas-monitor.yaml -o out/
  berth render --platform --check -o out/
  berth render app.yaml -o out/ --diff`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRender(cmd, g, opts, args)
		},
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}

func runRender(cmd *cobra.Command, g *GlobalOptions, opts RenderOptions, specs []string) error {
	if opts.Output == "" {
		return usagef("render needs -o DIR (or -o - for stdout)")
	}
	if opts.Ignition != "" {
		return renderIgnition(g, opts)
	}
	if len(specs) == 0 && !opts.Platform {
		return usagef("render needs at least one SPEC file, or --platform")
	}
	files, err := renderAll(specs, opts)
	if err != nil {
		return err
	}
	if opts.Check {
		if err := units.Verify(cmd.Context(), files); err != nil {
			return err
		}
	}
	switch {
	case opts.Diff:
		return diffUnits(g.stdout, opts.Output, files)
	case opts.Output == "-":
		for i, f := range files {
			if i > 0 {
				fmt.Fprintln(g.stdout)
			}
			fmt.Fprintf(g.stdout, "# %s\n", f.Name)
			if _, err := g.stdout.Write(f.Content); err != nil {
				return err
			}
		}
		return nil
	}
	if err := writeUnits(opts.Output, files); err != nil {
		return err
	}
	for _, f := range files {
		fmt.Fprintf(g.stdout, "wrote %s\n", filepath.Join(opts.Output, f.Name))
	}
	return nil
}

// renderAll parses every spec and renders every unit, refusing two apps of
// the same name.
func renderAll(specs []string, opts RenderOptions) ([]units.File, error) {
	uo := units.Options{Berth: opts.Berth, PassivateDriver: opts.PassivateDriver}
	var files []units.File
	var errs []error
	seen := map[string]string{}
	for _, path := range specs {
		apps, err := spec.ParseFile(path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, app := range apps {
			if prev, ok := seen[app.Name]; ok {
				errs = append(errs, fmt.Errorf("%s: app %q is already defined in %s", path, app.Name, prev))
				continue
			}
			seen[app.Name] = path
			fs, err := units.Render(app, uo)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", path, err))
				continue
			}
			files = append(files, fs...)
		}
	}
	if opts.Platform {
		fs, err := units.Platform(uo)
		if err != nil {
			errs = append(errs, err)
		}
		files = append(files, fs...)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return files, nil
}

// writeUnits writes every file to a temporary name in dir, then renames
// them all into place: an error leaves dir as it was.
func writeUnits(dir string, files []units.File) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var temps []string
	cleanup := func() {
		for _, t := range temps {
			os.Remove(t)
		}
	}
	for _, f := range files {
		tmp, err := os.CreateTemp(dir, "."+f.Name+".tmp-")
		if err != nil {
			cleanup()
			return err
		}
		temps = append(temps, tmp.Name())
		_, werr := tmp.Write(f.Content)
		serr := tmp.Sync()
		cerr := tmp.Close()
		if err := errors.Join(werr, serr, cerr, os.Chmod(tmp.Name(), 0o644)); err != nil {
			cleanup()
			return fmt.Errorf("write %s: %w", f.Name, err)
		}
	}
	for i, f := range files {
		if err := os.Rename(temps[i], filepath.Join(dir, f.Name)); err != nil {
			cleanup()
			return fmt.Errorf("write %s: %w", f.Name, err)
		}
	}
	return nil
}

// diffUnits prints a unified-style diff between dir and files.
func diffUnits(w io.Writer, dir string, files []units.File) error {
	changed := 0
	for _, f := range files {
		path := filepath.Join(dir, f.Name)
		old, err := os.ReadFile(path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if bytes.Equal(old, f.Content) {
			continue
		}
		changed++
		fmt.Fprint(w, lineDiff(path, string(old), string(f.Content)))
	}
	if changed == 0 {
		fmt.Fprintf(w, "no changes in %s\n", dir)
	}
	return nil
}

// lineDiff is a minimal line diff (longest common subsequence), enough for
// unit files of a few dozen lines.
func lineDiff(name, a, b string) string {
	x, y := splitLines(a), splitLines(b)
	n, m := len(x), len(y)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out strings.Builder
	fmt.Fprintf(&out, "--- %s\n+++ %s (rendered)\n", name, name)
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && x[i] == y[j]:
			i, j = i+1, j+1
		case j < m && (i == n || lcs[i][j+1] >= lcs[i+1][j]):
			fmt.Fprintf(&out, "+%s\n", y[j])
			j++
		default:
			fmt.Fprintf(&out, "-%s\n", x[i])
			i++
		}
	}
	return out.String()
}

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// renderIgnition writes a node's Ignition config to -o (a directory gets
// ignition-<role>.json).
func renderIgnition(g *GlobalOptions, opts RenderOptions) error {
	if opts.Ign.BerthURL == "" {
		return usagef("--ignition needs --berth-url")
	}
	opts.Ign.Berth = opts.Berth
	cfg, err := units.Ignition(opts.Ignition, opts.Ign)
	if err != nil {
		return usagef("%v", err)
	}
	if opts.Output == "-" {
		_, err := fmt.Fprintln(g.stdout, string(cfg))
		return err
	}
	f := units.File{Name: "ignition-" + opts.Ignition + ".json", Content: append(cfg, '\n')}
	if err := writeUnits(opts.Output, []units.File{f}); err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "wrote %s\n", filepath.Join(opts.Output, f.Name))
	return nil
}
