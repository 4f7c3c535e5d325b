package enginetest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/berthproject/berth/internal/systemdtest"
)

// Binaries are the engines' programs on the host: bin/test installs them
// (Debian podman, docker.io and docker-registry). The node's root has its
// own copies; the host's tell that the machine can run them at all, and
// docker-registry is run from the host's binary.
var Binaries = []string{"/usr/bin/podman", "/usr/sbin/dockerd", "/usr/bin/docker-registry"}

// Missing returns the first engine binary missing on this host, or "".
func Missing() string {
	for _, b := range Binaries {
		if _, err := os.Stat(b); err != nil {
			return b
		}
	}
	return ""
}

// CachePath is the cached root tarball of the engine nodes, next to
// systemdtest's. Its number changes with what build-rootfs.sh puts in.
func CachePath() string {
	return filepath.Join(filepath.Dir(systemdtest.CachePath()), "rootfs-engines-1.tar.zst")
}

var (
	rootOnce sync.Once
	rootDir  string
	rootErr  error
)

// Root returns the extracted root of the engine nodes, building the
// cached tarball first if needed (about a minute, once per machine: the
// systemd test root plus Debian's engines from the Debian mirror). The
// extracted root is kept next to the tarball and shared by every run: the
// nodes boot it read-only (--volatile=overlay).
func Root() (string, error) {
	rootOnce.Do(func() {
		if os.Geteuid() != 0 {
			rootErr = fmt.Errorf("engine nodes need root")
			return
		}
		tarball := CachePath()
		if _, err := os.Stat(tarball); err != nil {
			if _, err := systemdtest.Root(); err != nil { // builds the base tarball
				rootErr = err
				return
			}
			_, file, _, _ := runtime.Caller(0)
			script := filepath.Join(filepath.Dir(file), "build-rootfs.sh")
			out, err := exec.Command("bash", script, systemdtest.CachePath(), tarball).CombinedOutput()
			if err != nil {
				rootErr = fmt.Errorf("build engine root filesystem: %v\n%s", err, out)
				return
			}
		}
		rootDir, rootErr = extract(tarball)
	})
	return rootDir, rootErr
}

// extract unpacks tarball once into the directory of the same name
// without ".tar.zst", marked complete by a file; concurrent first runs
// each extract into a scratch directory and the first rename wins.
func extract(tarball string) (string, error) {
	dir := strings.TrimSuffix(tarball, ".tar.zst")
	done := filepath.Join(dir, ".berth-complete")
	if _, err := os.Stat(done); err == nil {
		return dir, nil
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), filepath.Base(dir)+".tmp-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.Command("sh", "-c", `zstd -dc "$1" | tar -C "$2" -xf -`, "sh", tarball, tmp)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("extract %s: %v\n%s", tarball, err, out)
	}
	if err := os.WriteFile(filepath.Join(tmp, ".berth-complete"), nil, 0o644); err != nil {
		return "", err
	}
	// MkdirTemp made tmp 0700; the root's own mode is 0755.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", err
	}
	os.RemoveAll(dir) // an incomplete extraction of an earlier run
	if err := os.Rename(tmp, dir); err != nil {
		if _, serr := os.Stat(done); serr == nil {
			return dir, nil // another run finished first
		}
		return "", err
	}
	return dir, nil
}
