package main

import (
	"os"
	"path/filepath"
	"strings"
)

// invokedAs is how the user ran berth, for hints that must work as
// printed: "go run ./cmd/berth" when the binary is one go run built (in a
// go-build temporary directory or the build cache), the path as typed
// ("./berth", "/opt/bin/berth") when it has a slash, else the name found
// in PATH.
func invokedAs(arg0, exe, gocache string) string {
	if isGoRun(exe, gocache) {
		return "go run ./cmd/berth"
	}
	if arg0 == "" {
		return "berth"
	}
	if strings.ContainsAny(arg0, " '\"$") {
		return "'" + strings.ReplaceAll(arg0, "'", `'\''`) + "'"
	}
	return arg0
}

// isGoRun reports whether exe was built by go run: go run links into
// $TMPDIR/go-buildNNN/b001/exe/, or (Go 1.24 on) caches the binary in the
// build cache ($GOCACHE, by default .../go-build/).
func isGoRun(exe, gocache string) bool {
	if exe == "" {
		return false
	}
	dir := filepath.ToSlash(filepath.Dir(exe))
	if gocache != "" && strings.HasPrefix(dir, filepath.ToSlash(filepath.Clean(gocache))+"/") {
		return true
	}
	for _, part := range strings.Split(dir, "/") {
		if strings.HasPrefix(part, "go-build") {
			return true
		}
	}
	return false
}

// cliName is invokedAs for this process.
func cliName() string {
	exe, _ := os.Executable()
	return invokedAs(os.Args[0], exe, os.Getenv("GOCACHE"))
}
