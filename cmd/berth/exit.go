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

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// exitCode prints err and maps it to an exit code.
func exitCode(stderr io.Writer, err error) int {
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "berth: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	return exitFailure
}
