package main

import (
	"errors"
	"fmt"
	"io"
)

// Exit codes of the berth command.
const (
	exitOK      = 0
	exitFailure = 1 // the command failed (bad spec, unreachable etcd, ...)
	exitUsage   = 2 // the command line itself is wrong
)

// usageError marks an error in the command line (unknown flag, missing
// argument), which exits with exitUsage.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// exitStatus is an exit status chosen before the edge: the status of a
// command berth ran for the user (the remote systemctl's or journalctl's
// becomes berth's, as with fleetctl), or a failure worded as fleetctl
// words it. msg, when set, is printed; a command's own status is not.
type exitStatus struct {
	code int
	msg  string
}

func (e exitStatus) Error() string {
	if e.msg != "" {
		return e.msg
	}
	return fmt.Sprintf("exit status %d", e.code)
}

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// exitCode prints err and maps it to an exit code. A command berth ran
// for the user (berth fleet status and journal) gives its own exit
// status, silently as fleetctl, or with exitStatus's message.
func exitCode(stderr io.Writer, err error) int {
	if err == nil {
		return exitOK
	}
	var es exitStatus
	if errors.As(err, &es) {
		if es.msg != "" {
			fmt.Fprintf(stderr, "berth: %s\n", es.msg)
		}
		return es.code
	}
	fmt.Fprintf(stderr, "berth: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	return exitFailure
}
