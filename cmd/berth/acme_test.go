package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
	"go.uber.org/zap"

	"github.com/berthproject/berth/internal/registry"
)

// TestACMERefusesWithoutKey: --acme does not start without an HTTPS
// listener or a readable key, and never quotes the key file.
func TestACMERefusesWithoutKey(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.key")
	os.WriteFile(bad, []byte("not-a-key-but-a-secret"), 0o600)
	k, _ := registry.NewKeys("")
	log, _ := test.NewNullLogger()
	tests := []struct {
		name, keyFile, tlsAddr, want string
	}{
		{"no https listener", bad, "", "--acme needs an HTTPS listener"},
		{"missing key file", filepath.Join(dir, "missing"), "127.0.0.1:443", "--acme-key-file"},
		{"bad key file", bad, "127.0.0.1:443", "--acme-key-file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := ACMEOptions{Enable: true, KeyFile: tc.keyFile}
			_, err := o.enable(nil, nil, k, "127.0.0.1:80", tc.tlsAddr, log)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "secret") {
				t.Errorf("got %v, want an error naming %q and not quoting the key", err, tc.want)
			}
			if code := exitCode(io.Discard, err); code != exitUsage {
				t.Errorf("exit code %d, want the usage code", code)
			}
		})
	}
}

// TestZapToLogrus: certmagic's zap logs arrive in logrus with their
// level, message and fields.
func TestZapToLogrus(t *testing.T) {
	log, hook := test.NewNullLogger()
	log.SetLevel(logrus.DebugLevel)
	z := zapToLogrus(log).With(zap.String("issuer", "pebble"))
	z.Warn("renewal failed", zap.String("identifier", "a.example.com"))
	z.Debug("quiet")
	e := hook.AllEntries()
	if len(e) != 2 || e[0].Level != logrus.WarnLevel || e[0].Message != "renewal failed" ||
		e[0].Data["issuer"] != "pebble" || e[0].Data["identifier"] != "a.example.com" || e[1].Level != logrus.DebugLevel {
		t.Errorf("got %+v", e)
	}
}
