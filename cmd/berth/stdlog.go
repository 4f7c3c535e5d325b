package main

import (
	"log"
	"strings"

	"github.com/sirupsen/logrus"
)

type logrusWriter struct{ log logrus.FieldLogger }

func (w logrusWriter) Write(p []byte) (int, error) {
	w.log.Debug(strings.TrimSpace(string(p)))
	return len(p), nil
}

// newStdlog adapts a logrus logger for packages that take a *log.Logger.
func newStdlog(l logrus.FieldLogger) *log.Logger {
	return log.New(logrusWriter{l.WithField("component", "http")}, "", 0)
}
