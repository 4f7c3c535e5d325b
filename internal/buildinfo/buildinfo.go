// Package buildinfo holds the version and commit of this build of berth.
package buildinfo

import (
	"runtime/debug"

	"github.com/coreos/go-semver/semver"
)

// Version is berth's semantic version. Release builds set it with
// -ldflags "-X github.com/berthproject/berth/internal/buildinfo.Version=1.2.3".
var Version = "0.1.0-dev"

// Commit is the git commit of this build. Release builds set it with -ldflags;
// otherwise it is read from the Go build information when available.
var Commit = ""

// SemVer returns Version parsed as a semantic version. It panics only if a
// release build was linked with an invalid version, which the release test
// catches.
func SemVer() *semver.Version {
	return semver.New(Version)
}

// CommitOrUnknown returns Commit, or the VCS revision recorded by the Go
// toolchain, or "unknown".
func CommitOrUnknown() string {
	if Commit != "" {
		return Commit
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && s.Value != "" {
				return s.Value
			}
		}
	}
	return "unknown"
}
