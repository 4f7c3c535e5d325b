package enginetest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
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
		rootDir, rootErr = systemdtest.Extract(tarball)
	})
	return rootDir, rootErr
}
