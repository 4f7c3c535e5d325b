package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/berthproject/berth/internal/secret"
)

// SecretOptions are the flags shared by the secret commands.
type SecretOptions struct {
	Etcd   EtcdOptions
	Output string // text or json
}

// AddFlags registers the flags.
func (o *SecretOptions) AddFlags(f *pflag.FlagSet) {
	o.Etcd.AddFlags(f)
	f.StringVarP(&o.Output, "output", "o", "text", "output: text or json")
}

// store connects to etcd and runs f with the secret store and a bounded
// context.
func (o *SecretOptions) store(ctx context.Context, f func(context.Context, *secret.Store) error) error {
	if o.Output != "text" && o.Output != "json" {
		return usagef("-o must be text or json, got %q", o.Output)
	}
	cli, k, err := o.Etcd.Connect()
	if err != nil {
		return err
	}
	defer cli.Close()
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, 4*o.Etcd.RequestTimeout)
	defer cancel()
	if err := f(ctx, &secret.Store{KV: cli, Keys: k}); err != nil {
		if ctx.Err() != nil {
			return o.Etcd.wrapErr(err)
		}
		return err
	}
	return nil
}

func newSecretCommand(g *GlobalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secret",
		Short: "Sealed secrets: values encrypted to the cluster's key, opened only on nodes (docs/secrets.md)",
		Long: `An app's secrets are sealed with age (X25519) to the cluster's recipients,
published in etcd, and stored at <root>/secrets/v1/apps/<app>/<name>. Nodes hold
the matching identity (/etc/berth/pki/secrets.key, mode 0600); an app spec
refers to a secret in env ("DB_PASSWORD: secret:db-password") or as its
pullSecret, and the unit's pre-start hook writes the values to tmpfs.

First time: berth secret keygen secrets.key, put the file on every node, then
berth secret init --identity secrets.key. No command prints a value.`,
	}
	cmd.AddCommand(newSecretKeygenCommand(g), newSecretInitCommand(g), newSecretPutCommand(g), newSecretListCommand(g),
		newSecretRmCommand(g), newSecretRotateCommand(g))
	return cmd
}

func newSecretKeygenCommand(g *GlobalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "keygen FILE",
		Short: "Make a new identity (private key) in FILE, mode 0600, and print its public key",
		Long: `keygen writes a new age X25519 identity to FILE (which must not exist) with
mode 0600 and prints its recipient (public key, age1...). Install FILE on every
node as /etc/berth/pki/secrets.key (bin/create-stack.sh uploads it to SSM for
the AWS stack), then publish the recipient with berth secret init, or switch to
it with berth secret rotate.`,
		Example: "  berth secret keygen secrets.key",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := secret.Generate()
			if err != nil {
				return err
			}
			if err := secret.WriteIdentity(args[0], id); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "public key: %s\n", id.Recipient())
			return nil
		},
	}
}

// recipientFlags are the ways to name recipients: listed, or derived
// from identity files.
type recipientFlags struct {
	Recipients []string
	Identities []string
}

func (r *recipientFlags) addFlags(f *pflag.FlagSet, what string) {
	f.StringArrayVar(&r.Recipients, "recipient", nil, what+": an age recipient (age1...), repeatable")
	f.StringArrayVar(&r.Identities, "recipient-identity", nil, what+": the public key of this identity file, repeatable")
}

func (r *recipientFlags) list() ([]string, error) {
	text := strings.Join(r.Recipients, "\n")
	for _, path := range r.Identities {
		ids, err := secret.LoadIdentities(path)
		if err != nil {
			return nil, err
		}
		text += "\n" + strings.Join(secret.RecipientsOf(ids), "\n")
	}
	rs, err := secret.ParseRecipients(text)
	if err != nil {
		return nil, usagef("recipients: %v (give --recipient or --recipient-identity)", err)
	}
	return rs, nil
}

func newSecretInitCommand(g *GlobalOptions) *cobra.Command {
	var opts SecretOptions
	var rf recipientFlags
	cmd := &cobra.Command{
		Use:   "init (--recipient age1... | --recipient-identity FILE)",
		Short: "Publish the cluster's recipients (public keys) in etcd, once",
		Long: `init stores the recipients that berth secret put seals values to. It is
idempotent; to change the key of a cluster that has one, use berth secret rotate.`,
		Example: "  berth secret init --recipient-identity secrets.key\n  berth secret init --recipient age1...",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rs, err := rf.list()
			if err != nil {
				return err
			}
			return opts.store(cmd.Context(), func(ctx context.Context, s *secret.Store) error {
				if err := s.Init(ctx, rs); err != nil {
					return err
				}
				fmt.Fprintf(g.stdout, "recipients at %s: %s\n", s.Keys.SecretRecipients(), strings.Join(rs, ", "))
				return nil
			})
		},
	}
	opts.AddFlags(cmd.Flags())
	rf.addFlags(cmd.Flags(), "recipient")
	return cmd
}

func newSecretPutCommand(g *GlobalOptions) *cobra.Command {
	var opts SecretOptions
	var fromFile string
	var keepNewline bool
	cmd := &cobra.Command{
		Use:   "put APP NAME [--from-file FILE | -]",
		Short: "Seal a value from a file or stdin and store it as the app's secret NAME",
		Long: `put seals the value to the cluster's recipients and stores it, replacing
any previous value; running instances get the new value at their next start.
The value comes from --from-file or stdin ("-" or nothing), never from the
command line. One trailing newline is dropped (echo adds one) unless
--keep-newline. Values are at most 512 KiB.`,
		Example: "  berth secret put shop db-password --from-file db-password.txt\n" +
			"  berth secret put shop registry-auth --from-file ~/.docker/config.json\n" +
			"  printf %s \"$TOKEN\" | berth secret put shop api-token -",
		Args: cobra.RangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 3 && args[2] != "-" {
				return usagef("the value is never given on the command line: use --from-file FILE or stdin (-)")
			}
			if len(args) == 3 && fromFile != "" {
				return usagef("give --from-file or -, not both")
			}
			var r io.Reader = cmd.InOrStdin()
			if fromFile != "" {
				f, err := os.Open(fromFile)
				if err != nil {
					return err
				}
				defer f.Close()
				r = f
			}
			value, err := io.ReadAll(io.LimitReader(r, secret.MaxSize+2))
			if err != nil {
				return err
			}
			if !keepNewline {
				value = bytes.TrimSuffix(value, []byte("\n"))
				value = bytes.TrimSuffix(value, []byte("\r"))
			}
			return opts.store(cmd.Context(), func(ctx context.Context, s *secret.Store) error {
				sealed, err := s.Put(ctx, args[0], args[1], value)
				if err != nil {
					return err
				}
				if opts.Output == "json" {
					return json.NewEncoder(g.stdout).Encode(secret.Entry{App: args[0], Name: args[1], Size: sealed.Size, Updated: sealed.Updated, Recipients: sealed.Recipients})
				}
				fmt.Fprintf(g.stdout, "sealed %s/%s (%d bytes) to %d recipient(s)\n", args[0], args[1], sealed.Size, len(sealed.Recipients))
				return nil
			})
		},
	}
	opts.AddFlags(cmd.Flags())
	cmd.Flags().StringVar(&fromFile, "from-file", "", "read the value from this file")
	cmd.Flags().BoolVar(&keepNewline, "keep-newline", false, "keep a trailing newline of the value")
	return cmd
}

func newSecretListCommand(g *GlobalOptions) *cobra.Command {
	var opts SecretOptions
	cmd := &cobra.Command{
		Use:   "list [APP]",
		Short: "List secrets: names, sizes, dates and whether they are sealed to the current recipients; never values",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			app := ""
			if len(args) == 1 {
				app = args[0]
			}
			return opts.store(cmd.Context(), func(ctx context.Context, s *secret.Store) error {
				es, err := s.List(ctx, app)
				if err != nil {
					return err
				}
				current, _ := s.Recipients(ctx)
				if opts.Output == "json" {
					return json.NewEncoder(g.stdout).Encode(es)
				}
				tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "APP\tNAME\tSIZE\tUPDATED\tSEALED TO")
				for _, e := range es {
					to := "current key"
					if !slices.Equal(e.Recipients, current) {
						to = "other key: berth secret rotate"
					}
					fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", e.App, e.Name, e.Size, e.Updated.Format(time.RFC3339), to)
				}
				return tw.Flush()
			})
		},
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}

func newSecretRmCommand(g *GlobalOptions) *cobra.Command {
	var opts SecretOptions
	cmd := &cobra.Command{
		Use:   "rm APP NAME",
		Short: "Remove the app's secret NAME (instances referring to it then fail to start)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return opts.store(cmd.Context(), func(ctx context.Context, s *secret.Store) error {
				if err := s.Delete(ctx, args[0], args[1]); err != nil {
					return err
				}
				fmt.Fprintf(g.stdout, "removed %s/%s\n", args[0], args[1])
				return nil
			})
		},
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}

func newSecretRotateCommand(g *GlobalOptions) *cobra.Command {
	var opts SecretOptions
	var rf recipientFlags
	var identity string
	cmd := &cobra.Command{
		Use:   "rotate --identity OLD.key (--recipient age1... | --recipient-identity NEW.key)",
		Short: "Re-seal every secret to new recipients, opening them with the old identity",
		Long: `rotate makes the given recipients the cluster's and re-seals every stored
value to them. It opens each value with --identity first, so a wrong key
changes nothing. It writes as berth-operator (berth-agent may not write
secrets): run it where the operator's etcd credentials and the old key are,
an operator's machine with the key file, or a node (whose key is the default
--identity) given the operator's certificate for the occasion. Running it
again finishes an interrupted rotation.

Without downtime (docs/secrets.md): keygen a new key; rotate to both the old
and the new recipient; install the new key on every node (with the old one
still in the file, or replacing it); rotate to the new recipient alone; remove
the old key everywhere.`,
		Example: "  berth secret rotate --identity old.key --recipient-identity old.key --recipient-identity new.key\n" +
			"  berth secret rotate --identity new.key --recipient-identity new.key",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rs, err := rf.list()
			if err != nil {
				return err
			}
			ids, err := secret.LoadIdentities(identity)
			if err != nil {
				return err
			}
			return opts.store(cmd.Context(), func(ctx context.Context, s *secret.Store) error {
				res, err := s.Rotate(ctx, ids, rs)
				if err != nil {
					return err
				}
				if opts.Output == "json" {
					return json.NewEncoder(g.stdout).Encode(map[string]any{"recipients": rs, "resealed": res.Resealed, "kept": res.Kept})
				}
				fmt.Fprintf(g.stdout, "recipients: %s\nre-sealed %d secret(s), %d already sealed to them\n", strings.Join(rs, ", "), res.Resealed, res.Kept)
				return nil
			})
		},
	}
	opts.AddFlags(cmd.Flags())
	rf.addFlags(cmd.Flags(), "new recipient")
	cmd.Flags().StringVar(&identity, "identity", envOr(secret.IdentityEnv, secret.DefaultIdentityFile), "identity file that opens the current values (env "+secret.IdentityEnv+")")
	return cmd
}
