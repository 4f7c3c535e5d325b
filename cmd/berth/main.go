// Command berth is one binary for every role of the berth platform: unit
// rendering, unit hooks, the node agent, the router, dnsd, passivation and
// the operator's views. See docs/ and "berth --help".
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command line and returns the process exit code. Signals
// cancel the command's context; exit codes are chosen here only.
func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCommand(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	return exitCode(stderr, err)
}
