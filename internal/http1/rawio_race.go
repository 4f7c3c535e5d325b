//go:build linux && race

package http1

import "syscall"

// Under the race detector the lane uses the syscall package's read and
// write, which tell the detector that socket I/O orders memory (as the
// programs on either end rely on); RawSyscall would hide that.
func sysRead(fd uintptr, p []byte) (int, error) {
	n, err := syscall.Read(int(fd), p)
	if err != nil {
		return 0, err
	}
	return n, nil
}

func sysWrite(fd uintptr, p []byte) (int, error) {
	n, err := syscall.Write(int(fd), p)
	if err != nil {
		return 0, err
	}
	return n, nil
}

func sysPeek(fd uintptr, p []byte) error {
	_, _, err := syscall.Recvfrom(int(fd), p, syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return err
}
