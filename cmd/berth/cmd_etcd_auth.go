package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/berthproject/berth/internal/etcdauth"
)

func newEtcdAuthCommand(g *GlobalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "etcd-auth",
		Short: "Manage berth's etcd users and roles",
	}
	var opts EtcdOptions
	initCmd := &cobra.Command{
		Use:   "init",
		Short: "Create berth's roles and users (least privilege) and enable etcd auth; idempotent",
		Long: `init connects with root access (a client certificate with CN=root, or
--etcd-user root and BERTH_ETCD_PASSWORD) and makes etcd's roles match
berth's: berth-reader (routers), berth-dns (dnsd, read-only), berth-agent
(agents, hooks, passivation) and berth-operator (the CLI), each with a user of the same
name without a password (its client certificate's CN names it), and the
root user if missing. It grants missing permissions, revokes ones a berth
role should not have, enables auth, and prints each change. The
permissions are listed in docs/security.md.`,
		Example: "  berth etcd-auth init --etcd-endpoints https://10.0.1.5:2379 --etcd-cacert ca.pem --etcd-cert root.pem --etcd-key root-key.pem",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runEtcdAuthInit(cmd.Context(), g, opts)
		},
	}
	opts.AddFlags(initCmd.Flags())
	cmd.AddCommand(initCmd)
	return cmd
}

func runEtcdAuthInit(ctx context.Context, g *GlobalOptions, o EtcdOptions) error {
	cli, k, err := o.Connect()
	if err != nil {
		return err
	}
	defer cli.Close()
	rctx, cancel := context.WithTimeout(ctx, 3*o.RequestTimeout)
	defer cancel()
	if err := etcdauth.Apply(rctx, cli, etcdauth.Roles(k.Root()), g.stdout); err != nil {
		return o.wrapErr(err)
	}
	return nil
}
