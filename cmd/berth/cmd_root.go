package main

import (
	"fmt"
	"io"
	"os"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"
)

// GlobalOptions are the flags every command takes.
type GlobalOptions struct {
	LogLevel  string // panic..trace (default info)
	LogFormat string // auto (default: text on a terminal, json otherwise), text or json

	stdout, stderr io.Writer
}

// AddFlags registers the global flags.
func (o *GlobalOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.LogLevel, "log-level", envOr("BERTH_LOG_LEVEL", "info"), "log level: error, warn, info, debug or trace (env BERTH_LOG_LEVEL)")
	f.StringVar(&o.LogFormat, "log-format", envOr("BERTH_LOG_FORMAT", "auto"), "log format: auto (text on a terminal, else json), text or json (env BERTH_LOG_FORMAT)")
}

// Logger builds the process's logger; commands hand FieldLoggers from it to
// the packages they run.
func (o *GlobalOptions) Logger() (*logrus.Logger, error) {
	l := logrus.New()
	l.SetOutput(o.stderr)
	lvl, err := logrus.ParseLevel(o.LogLevel)
	if err != nil {
		return nil, usagef("--log-level: %v", err)
	}
	l.SetLevel(lvl)
	switch o.LogFormat {
	case "json":
		l.SetFormatter(&logrus.JSONFormatter{})
	case "text":
		l.SetFormatter(&logrus.TextFormatter{FullTimestamp: true})
	case "auto", "":
		if f, ok := o.stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			l.SetFormatter(&logrus.TextFormatter{FullTimestamp: true})
		} else {
			l.SetFormatter(&logrus.JSONFormatter{})
		}
	default:
		return nil, usagef("--log-format must be auto, text or json, got %q", o.LogFormat)
	}
	return l, nil
}

func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return def
}

func newRootCommand(stdout, stderr io.Writer) *cobra.Command {
	g := &GlobalOptions{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "berth",
		Short: "A small, self-healing platform on systemd and etcd",
		Long: `berth turns a cluster of systemd + etcd nodes (Flatcar Container Linux) into a
small platform: it renders units from short app specs, registers instances in
etcd on leases, routes HTTP by Host header, answers DNS for service names and
passivates idle apps.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w (see %s --help)", err, c.CommandPath())}
	})
	g.AddFlags(root.PersistentFlags())
	root.AddCommand(
		newVersionCommand(g),
		newRenderCommand(g),
		newStatusCommand(g),
		newRoutesCommand(g),
		newHookCommand(g),
		newApplyCommand(g),
		newDeleteCommand(g),
		newRouterCommand(g),
		newDNSDCommand(g),
		newDNSCommand(g),
		newDemoAppCommand(g),
		newUpCommand(g),
		newSecretCommand(g),
		newECRLoginCommand(g),
		newPassivateCommand(g),
		newScaleCommand(g),
		newAgentCommand(g),
		newCertCommand(g),
		newPKICommand(g),
		newEtcdAuthCommand(g),
		newSSMFetchCommand(g),
		newFleetCommand(g),
		newDeployCommand(g),
		newHistoryCommand(g),
		newRollbackCommand(g),
		newAPICommand(g),
		newTokenCommand(g),
	)
	return root
}

// noArgs refuses positional arguments with a usage error.
func noArgs(_ *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("unexpected argument %q", args[0])
	}
	return nil
}
