package systemdtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// Extract unpacks a cached root tarball ("NAME.tar.zst") once per machine
// into the directory NAME beside it, marked complete by a file, and
// returns that directory. Containers boot it read-only
// (--volatile=overlay), so every test run shares it; concurrent first runs
// (go test runs packages in parallel) take turns on a lock file, and an
// extraction cut short, or older than the tarball, is redone.
func Extract(tarball string) (string, error) {
	dir := strings.TrimSuffix(tarball, ".tar.zst")
	done := filepath.Join(dir, ".berth-complete")
	lock, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if m, err := os.Stat(done); err == nil {
		if t, err := os.Stat(tarball); err == nil && !t.ModTime().After(m.ModTime()) {
			return dir, nil
		}
	}
	if err := os.RemoveAll(dir); err != nil { // an extraction cut short
		return "", err
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
	// MkdirTemp made tmp 0700; a root directory's mode is 0755.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", err
	}
	return dir, nil
}
