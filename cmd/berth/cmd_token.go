package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/berthproject/berth/internal/api"
)

// TokenOptions are the flags of "berth token".
type TokenOptions struct {
	Etcd   EtcdOptions
	Scope  string
	Name   string
	Output string
}

// AddFlags registers the flags every token command takes.
func (o *TokenOptions) AddFlags(f *pflag.FlagSet) {
	o.Etcd.AddFlags(f)
	f.StringVarP(&o.Output, "output", "o", "text", "output: text or json")
}

func newTokenCommand(g *GlobalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create, list and revoke the HTTP API's bearer tokens",
		Long: `Token manages the bearer tokens of berth api (docs/api.md). A token has a
scope: read (GET requests and the event stream) or admin (everything). Only
its SHA-256 is stored in etcd (/berth/v1/tokens/); the token itself is
printed once, by create.`,
	}
	var create, list, revoke TokenOptions
	c := &cobra.Command{
		Use:     "create --scope read|admin [--name NAME]",
		Short:   "Create a token and print it (once)",
		Example: "  berth token create --scope read --name grafana\n  T=$(berth token create --scope admin --name ci)",
		Args:    noArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return runTokenCreate(cmd.Context(), g, create) },
	}
	create.AddFlags(c.Flags())
	c.Flags().StringVar(&create.Scope, "scope", "", "read or admin (required)")
	c.Flags().StringVar(&create.Name, "name", "", "name shown in berth token list and the audit log (default token-<id>)")
	l := &cobra.Command{
		Use:   "list",
		Short: "List the tokens: name, id, scope, created, by (never the tokens)",
		Args:  noArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runTokenList(cmd.Context(), g, list) },
	}
	list.AddFlags(l.Flags())
	r := &cobra.Command{
		Use:     "revoke NAME|ID...",
		Short:   "Revoke tokens by name or id (the API stops taking them within --token-ttl)",
		Example: "  berth token revoke grafana",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("revoke needs a token's NAME or ID (berth token list)")
			}
			return runTokenRevoke(cmd.Context(), g, revoke, args)
		},
	}
	revoke.AddFlags(r.Flags())
	cmd.AddCommand(c, l, r)
	return cmd
}

func runTokenCreate(ctx context.Context, g *GlobalOptions, o TokenOptions) error {
	if err := api.CheckScope(o.Scope); err != nil {
		return usagef("--scope: %v", err)
	}
	cli, k, err := o.Etcd.Connect()
	if err != nil {
		return err
	}
	defer cli.Close()
	rctx, cancel := context.WithTimeout(ctx, o.Etcd.RequestTimeout)
	defer cancel()
	token, info, err := api.CreateToken(rctx, cli, k, api.TokenOptions{Name: o.Name, Scope: o.Scope, By: whoami()})
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return o.Etcd.wrapErr(err)
		}
		return err
	}
	if o.Output == "json" {
		return json.NewEncoder(g.stdout).Encode(map[string]any{"token": token, "id": info.ID, "name": info.Name, "scope": info.Scope})
	}
	fmt.Fprintln(g.stdout, token)
	fmt.Fprintf(g.stderr, "created %s token %s (id %s); it is shown only now\n", info.Scope, info.Name, info.ID)
	return nil
}

func runTokenList(ctx context.Context, g *GlobalOptions, o TokenOptions) error {
	cli, k, err := o.Etcd.Connect()
	if err != nil {
		return err
	}
	defer cli.Close()
	rctx, cancel := context.WithTimeout(ctx, o.Etcd.RequestTimeout)
	defer cancel()
	ts, err := api.ListTokens(rctx, cli, k)
	if err != nil {
		return o.Etcd.wrapErr(err)
	}
	if o.Output == "json" {
		return json.NewEncoder(g.stdout).Encode(ts)
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tID\tSCOPE\tCREATED\tBY")
	for _, t := range ts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.Name, t.ID, t.Scope, time.UnixMilli(t.Created).UTC().Format(time.RFC3339), dash(t.By))
	}
	return tw.Flush()
}

func runTokenRevoke(ctx context.Context, g *GlobalOptions, o TokenOptions, refs []string) error {
	cli, k, err := o.Etcd.Connect()
	if err != nil {
		return err
	}
	defer cli.Close()
	var errs []error
	for _, ref := range refs {
		rctx, cancel := context.WithTimeout(ctx, o.Etcd.RequestTimeout)
		gone, err := api.RevokeTokens(rctx, cli, k, ref)
		cancel()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, t := range gone {
			fmt.Fprintf(g.stdout, "revoked %s (id %s, %s)\n", t.Name, t.ID, t.Scope)
		}
	}
	return errors.Join(errs...)
}
