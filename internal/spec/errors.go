package spec

import (
	"fmt"
	"strings"
)

// FieldError is one problem in a spec, named by its field path
// ("ports[1].container") and, when known, its line in the file.
type FieldError struct {
	Path string // field path, "" for the document itself
	Line int    // 1-based line in the YAML file, 0 if unknown
	Msg  string // what is wrong and how to fix it
	Err  error  // a sentinel for errors.Is, or nil
	Doc  int    // 1-based document in a file of several, 0 in a file of one
}

// Unwrap returns the sentinel behind e, if any.
func (e FieldError) Unwrap() error { return e.Err }

func (e FieldError) Error() string {
	var b strings.Builder
	if e.Doc > 0 {
		fmt.Fprintf(&b, "document %d, ", e.Doc)
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one spec. Parse and Validate return it
// (as an error) when the list is not empty.
type Errors []FieldError

// Unwrap returns the problems as errors, for errors.Is and errors.As.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// add records a problem at path.
func (es *Errors) add(path, format string, args ...any) {
	*es = append(*es, FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// err returns es as an error, or nil when it is empty.
func (es Errors) err() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

func joinPath(base, field string) string {
	if base == "" {
		return field
	}
	return base + "." + field
}

func indexPath(base string, i int) string { return fmt.Sprintf("%s[%d]", base, i) }
