package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/berthproject/berth/internal/demoapp"
)

// DemoAppOptions are the flags of "berth demo-app".
type DemoAppOptions struct {
	Listen string
	Spec   string // print the demo app's spec at this version instead of serving
}

// AddFlags registers the flags.
func (o *DemoAppOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.Listen, "listen", demoAppListen(os.Getenv("HOST"), os.Getenv("PORT")), "address (default $HOST:$PORT; HOST empty: every interface; PORT empty: 8080)")
	f.StringVar(&o.Spec, "spec", "", "print the spec of berth up's demo app at this version (for berth deploy) and exit")
}

// demoAppListen is the default address from HOST and PORT: the exec driver
// (berth up) sets HOST to the IP the instance is registered with,
// 127.0.0.1; units and containers set no HOST, so it listens on every
// interface. A HOST that is not an IP address (tcsh exports the machine's
// name in HOST) is ignored.
func demoAppListen(host, port string) string {
	if net.ParseIP(host) == nil {
		host = ""
	}
	if port == "" {
		port = "8080"
	}
	return net.JoinHostPort(host, port)
}

func newDemoAppCommand(g *GlobalOptions) *cobra.Command {
	var opts DemoAppOptions
	cmd := &cobra.Command{
		Use:   "demo-app",
		Short: "Run the demo web app (which instance answered?), as berth up --demo does",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemoApp(cmd.Context(), g, opts)
		},
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}

func runDemoApp(ctx context.Context, g *GlobalOptions, o DemoAppOptions) error {
	if o.Spec != "" {
		a, err := demoSpec(3, demoIdleTimeout)
		if err != nil {
			return err
		}
		a.Version = o.Spec
		if err := a.Validate(); err != nil {
			return usagef("--spec: %v", err)
		}
		b, err := json.MarshalIndent(a, "", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintf(g.stdout, "%s\n", b)
		return nil
	}
	l, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return err
	}
	exit := make(chan int, 1)
	srv := &http.Server{Handler: demoapp.Handler(func(code int) { exit <- code }), ReadHeaderTimeout: 5 * time.Second}
	errs := make(chan error, 1)
	go func() { errs <- srv.Serve(l) }()
	select {
	case <-ctx.Done():
	case err := <-errs:
		return err
	case code := <-exit:
		srv.Close()
		return fmt.Errorf("stopped by POST /stop (exit %d)", code)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}
