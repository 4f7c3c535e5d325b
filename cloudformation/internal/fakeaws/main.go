// Command fakeaws stands in for the aws CLI in the tests of bin/create-stack.sh,
// bin/tunnel.sh and bin/destroy-stack.sh (AWS is unreachable from them). It
// answers the calls the scripts make with the JSON the services return,
// applies --query (JMESPath) and --output text the way the CLI does, and keeps
// the account's state in a directory, so that a second run sees what the first
// one made: stacks and change sets, S3 buckets and objects, SSM parameters.
//
// Environment: FAKE_AWS_STATE (the state directory, required), FAKE_AWS_LOG
// (every call is appended to it as "aws ARGS..."), FAKE_AWS_MODE (words that
// make calls fail: "fail" rolls back executed change sets, "csfail" fails
// change sets with a template error), AWS_DEFAULT_REGION.
//
// Errors look like the CLI's: "An error occurred (Code) when calling the Op
// operation: message" on stderr and exit status 254; failed waiters exit 255;
// an unknown call exits 99.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/jmespath/go-jmespath"
)

// Account is the id of the fake account (sts get-caller-identity).
const Account = "123456789012"

// call is one parsed invocation: service, operation, positional arguments
// and options (each option with the values that follow it).
type call struct {
	service, op string
	pos         []string
	opts        map[string][]string
	state       string
	region      string
	mode        string
}

func (c *call) opt(name string) string {
	if v := c.opts[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func (c *call) has(word string) bool {
	return strings.Contains(" "+c.mode+" ", " "+word+" ")
}

// apiError is a service error, printed as the CLI prints it.
type apiError struct {
	code, op, msg string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("An error occurred (%s) when calling the %s operation: %s", e.code, e.op, e.msg)
}

// waiterError is a waiter that reached a failure state.
type waiterError struct{ name, reason string }

func (e *waiterError) Error() string {
	return fmt.Sprintf("Waiter %s failed: Waiter encountered a terminal failure state: %s", e.name, e.reason)
}

var errUnknown = errors.New("unexpected call")

func parse(args []string) *call {
	c := &call{opts: map[string][]string{}, state: os.Getenv("FAKE_AWS_STATE"), mode: os.Getenv("FAKE_AWS_MODE"),
		region: os.Getenv("AWS_DEFAULT_REGION")}
	cur := ""
	for _, a := range args {
		switch {
		case strings.HasPrefix(a, "--"):
			cur = a[2:]
			c.opts[cur] = []string{}
		case cur != "":
			c.opts[cur] = append(c.opts[cur], a)
		case c.service == "":
			c.service = a
		case c.op == "":
			c.op = a
		default:
			c.pos = append(c.pos, a)
		}
	}
	if r := c.opt("region"); r != "" {
		c.region = r
	}
	return c
}

func main() {
	if f := os.Getenv("FAKE_AWS_LOG"); f != "" {
		if lf, err := os.OpenFile(f, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			fmt.Fprintln(lf, "aws "+strings.Join(os.Args[1:], " "))
			lf.Close()
		}
	}
	c := parse(os.Args[1:])
	if c.state == "" {
		fmt.Fprintln(os.Stderr, "fake aws: FAKE_AWS_STATE is not set")
		os.Exit(99)
	}
	if c.region == "" && c.service != "sts" {
		fmt.Fprintln(os.Stderr, "You must specify a region. You can also configure your region by running \"aws configure\".")
		os.Exit(253)
	}
	out, err := dispatch(c)
	var ae *apiError
	var we *waiterError
	switch {
	case errors.As(err, &ae):
		fmt.Fprintf(os.Stderr, "\n%v\n", err)
		os.Exit(254)
	case errors.As(err, &we):
		fmt.Fprintf(os.Stderr, "\n%v\n", err)
		os.Exit(255)
	case err != nil:
		fmt.Fprintf(os.Stderr, "fake aws: %v: %s\n", err, strings.Join(os.Args[1:], " "))
		os.Exit(99)
	}
	if out == nil {
		return
	}
	if err := print(c, out); err != nil {
		fmt.Fprintf(os.Stderr, "fake aws: %v\n", err)
		os.Exit(252)
	}
}

func dispatch(c *call) (any, error) {
	switch c.service {
	case "sts":
		if c.op == "get-caller-identity" {
			return map[string]any{"UserId": "AIDAEXAMPLE", "Account": Account, "Arn": "arn:aws:iam::" + Account + ":user/tester"}, nil
		}
	case "cloudformation":
		return cloudformation(c)
	case "s3api", "s3":
		return s3(c)
	case "ec2":
		return ec2(c)
	case "ssm":
		return ssm(c)
	case "autoscaling":
		if c.op == "describe-auto-scaling-groups" {
			return describeGroups(c), nil
		}
	case "route53":
		if c.op == "list-hosted-zones-by-name" {
			return hostedZones(c), nil
		}
	}
	return nil, errUnknown
}

// print writes the answer as the CLI does: --query applied, then JSON or
// (--output text) tab-separated text.
func print(c *call, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var data any
	if err := json.Unmarshal(raw, &data); err != nil {
		return err
	}
	if q := c.opt("query"); q != "" {
		if data, err = jmespath.Search(q, data); err != nil {
			return fmt.Errorf("bad --query %q: %w", q, err)
		}
	}
	if c.opt("output") == "text" {
		var b strings.Builder
		text(&b, data)
		fmt.Print(b.String())
		return nil
	}
	pretty, err := json.MarshalIndent(data, "", "    ")
	if err != nil {
		return err
	}
	fmt.Println(string(pretty))
	return nil
}

// text formats v like the CLI's text output: a scalar or a list of scalars
// is one line (tab-separated), a list of lists one line per inner list, an
// object its scalar values sorted by key and then its nested values.
func text(b *strings.Builder, v any) {
	switch x := v.(type) {
	case []any:
		if allScalars(x) {
			row(b, x)
			return
		}
		for _, e := range x {
			text(b, e)
		}
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var scalars []any
		for _, k := range keys {
			if isScalar(x[k]) {
				scalars = append(scalars, x[k])
			}
		}
		if len(scalars) > 0 {
			row(b, scalars)
		}
		for _, k := range keys {
			if !isScalar(x[k]) {
				text(b, x[k])
			}
		}
	default:
		row(b, []any{x})
	}
}

func row(b *strings.Builder, vals []any) {
	for i, v := range vals {
		if i > 0 {
			b.WriteByte('\t')
		}
		b.WriteString(scalar(v))
	}
	b.WriteByte('\n')
}

func isScalar(v any) bool {
	switch v.(type) {
	case []any, map[string]any:
		return false
	}
	return true
}

func allScalars(l []any) bool {
	for _, e := range l {
		if !isScalar(e) {
			return false
		}
	}
	return true
}

func scalar(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case string:
		return x
	case bool:
		if x {
			return "True"
		}
		return "False"
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}

// readJSON reads the state file name into v; it reports whether it exists.
func readJSON(name string, v any) (bool, error) {
	raw, err := os.ReadFile(name)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, json.Unmarshal(raw, v)
}

func writeJSON(name string, v any) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	raw, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(name, raw, 0o644)
}

// shorthand parses the CLI's "Key=Value,Key2=Value2" shorthand; the last
// key takes the rest of the string (values such as Values=a,b).
func shorthand(s string, keys ...string) map[string]string {
	m := map[string]string{}
	for i, k := range keys {
		p := strings.Index(s, k+"=")
		if p < 0 {
			continue
		}
		v := s[p+len(k)+1:]
		if i+1 < len(keys) {
			if q := strings.Index(v, ","+keys[i+1]+"="); q >= 0 {
				v = v[:q]
			}
		}
		m[k] = v
	}
	return m
}
