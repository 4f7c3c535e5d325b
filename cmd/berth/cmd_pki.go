package main

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/berthproject/berth/internal/pki"
)

// PKIIssueOptions are the flags of "berth pki issue".
type PKIIssueOptions struct {
	Name     string        // CN and file name; the etcd user for a client
	Role     string        // server, peer or client
	IPs      []net.IP      // IP SANs
	DNS      []string      // DNS SANs
	Validity time.Duration // default one year
}

// AddFlags registers the flags.
func (o *PKIIssueOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.Name, "name", "", "certificate name: the CN and file name; for --role client the etcd user (berth-reader, berth-dns, berth-agent, berth-operator, root)")
	f.StringVar(&o.Role, "role", "", "server (an etcd member's client port), peer (its peer port) or client")
	f.IPSliceVar(&o.IPs, "ip", nil, "IP address the server or peer answers on (repeatable)")
	f.StringSliceVar(&o.DNS, "dns", nil, "DNS name the server or peer answers on (repeatable)")
	f.DurationVar(&o.Validity, "validity", pki.CertValidity, "how long the certificate is valid")
}

func newPKICommand(g *GlobalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pki",
		Short: "A small CA for etcd's TLS: its key stays in DIR on this machine",
		Long: `pki keeps a certificate authority in DIR (ca.pem, and ca-key.pem with mode
0600, which never leaves this machine) and issues the certificates of etcd
members (--role server and peer) and of its clients (--role client, with the
etcd user as the name: etcd's --client-cert-auth takes the user from the CN).
docs/security.md says where each file goes on the nodes.`,
	}
	initCmd := &cobra.Command{
		Use:     "init DIR",
		Short:   "Create the CA in DIR (kept if it exists)",
		Example: "  berth pki init ~/.berth/pki",
		Args:    exactArgs(1, "pki init needs DIR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPKIInit(g, args[0])
		},
	}
	var opts PKIIssueOptions
	issue := &cobra.Command{
		Use:   "issue DIR --name NAME --role server|peer|client",
		Short: "Issue a certificate and key signed by the CA in DIR",
		Example: "  berth pki issue ~/.berth/pki --name etcd-1 --role server --ip 10.0.1.5 --dns etcd-1.internal\n" +
			"  berth pki issue ~/.berth/pki --name berth-reader --role client",
		Args: exactArgs(1, "pki issue needs DIR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPKIIssue(g, args[0], opts)
		},
	}
	opts.AddFlags(issue.Flags())
	cmd.AddCommand(initCmd, issue)
	return cmd
}

// exactArgs wants n positional arguments, else a usage error saying msg.
func exactArgs(n int, msg string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("%s", msg)
		}
		return nil
	}
}

func runPKIInit(g *GlobalOptions, dir string) error {
	ca, err := pki.Init(dir, "berth etcd CA")
	switch {
	case errors.Is(err, pki.ErrExists):
		fmt.Fprintf(g.stdout, "CA exists already in %s (valid until %s): kept\n", dir, ca.Cert.NotAfter.Format(time.DateOnly))
		return nil
	case err != nil:
		return err
	}
	fmt.Fprintf(g.stdout, "created CA in %s: %s (copy to nodes and clients), %s (0600: keep it on this machine)\n", dir, pki.CACertFile, pki.CAKeyFile)
	return nil
}

func runPKIIssue(g *GlobalOptions, dir string, o PKIIssueOptions) error {
	if o.Name == "" || o.Role == "" {
		return usagef("pki issue needs --name and --role")
	}
	ca, err := pki.Load(dir)
	if err != nil {
		return err
	}
	out, err := ca.Issue(pki.Request{Name: o.Name, Role: pki.Role(o.Role), IPs: o.IPs, DNS: o.DNS, Validity: o.Validity})
	if err != nil {
		return usagef("%v", err)
	}
	fmt.Fprintf(g.stdout, "issued %s certificate %s: %s, key %s (0600)\n", o.Role, o.Name, out.Cert, out.Key)
	return nil
}
