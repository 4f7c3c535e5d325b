package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Stack is a stack's state: stacks/NAME.json.
type Stack struct {
	StackName, StackStatus string
	Parameters             map[string]string
	TemplateSum            string
}

// ChangeSet is a change set's state: changesets/STACK/NAME.json.
type ChangeSet struct {
	Type, Status, StatusReason string
	Parameters                 map[string]string
	TemplateSum                string
}

const noChanges = "The submitted information didn't contain changes. Submit different information to create a change set."

func stackFile(c *call, name string) string { return filepath.Join(c.state, "stacks", name+".json") }

func changeSetFile(c *call, stack, name string) string {
	return filepath.Join(c.state, "changesets", stack, name+".json")
}

func stackARN(c *call, name string) string {
	return fmt.Sprintf("arn:aws:cloudformation:%s:%s:stack/%s/0000", c.region, Account, name)
}

func cloudformation(c *call) (any, error) {
	name := c.opt("stack-name")
	var st Stack
	exists, err := readJSON(stackFile(c, name), &st)
	if err != nil {
		return nil, err
	}
	notFound := &apiError{"ValidationError", opName(c.op), "Stack with id " + name + " does not exist"}
	if c.op == "wait" {
		return nil, wait(c, name, exists, st)
	}
	switch c.op {
	case "describe-stacks":
		if !exists {
			return nil, notFound
		}
		return map[string]any{"Stacks": []any{describeStack(c, st)}}, nil
	case "create-change-set":
		return createChangeSet(c, name, exists, st)
	case "describe-change-set":
		var cs ChangeSet
		if ok, err := readJSON(changeSetFile(c, name, c.opt("change-set-name")), &cs); err != nil || !ok {
			return nil, &apiError{"ChangeSetNotFound", "DescribeChangeSet", "ChangeSet [" + c.opt("change-set-name") + "] does not exist"}
		}
		return map[string]any{"ChangeSetName": c.opt("change-set-name"), "StackName": name, "Status": cs.Status,
			"StatusReason": cs.StatusReason, "ExecutionStatus": "UNAVAILABLE"}, nil
	case "delete-change-set":
		if err := os.Remove(changeSetFile(c, name, c.opt("change-set-name"))); err != nil {
			return nil, &apiError{"ChangeSetNotFound", "DeleteChangeSet", "ChangeSet [" + c.opt("change-set-name") + "] does not exist"}
		}
		return nil, nil
	case "execute-change-set":
		return nil, executeChangeSet(c, name, st)
	case "describe-stack-events":
		if !exists {
			return nil, notFound
		}
		events := []any{
			map[string]any{"Timestamp": "2026-11-21T10:00:00Z", "LogicalResourceId": name, "ResourceStatus": "CREATE_IN_PROGRESS", "ResourceStatusReason": "User Initiated"},
			map[string]any{"Timestamp": "2026-11-21T10:01:00Z", "LogicalResourceId": "VPC", "ResourceStatus": "CREATE_COMPLETE"},
		}
		if strings.Contains(st.StackStatus, "ROLLBACK") {
			events = append([]any{map[string]any{"Timestamp": "2026-11-21T10:05:00Z", "LogicalResourceId": "ServerGroup",
				"ResourceStatus": "CREATE_FAILED", "ResourceStatusReason": "You have requested more vCPU capacity than your current limit"}}, events...)
		}
		return map[string]any{"StackEvents": events}, nil
	case "delete-stack":
		if exists {
			st.StackStatus = "DELETE_COMPLETE"
			os.RemoveAll(filepath.Join(c.state, "changesets", name))
			return nil, os.Remove(stackFile(c, name))
		}
		return nil, nil
	}
	return nil, errUnknown
}

func describeStack(c *call, st Stack) any {
	keys := make([]string, 0, len(st.Parameters))
	for k := range st.Parameters {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	params := []any{}
	for _, k := range keys {
		params = append(params, map[string]any{"ParameterKey": k, "ParameterValue": st.Parameters[k]})
	}
	s := map[string]any{"StackName": st.StackName, "StackId": stackARN(c, st.StackName), "StackStatus": st.StackStatus, "Parameters": params}
	if st.StackStatus == "CREATE_COMPLETE" || strings.HasPrefix(st.StackStatus, "UPDATE_") {
		s["Outputs"] = []any{
			map[string]any{"OutputKey": "LoadBalancerDNSName", "OutputValue": "berth-lb-123.elb." + c.region + ".amazonaws.com"},
			map[string]any{"OutputKey": "ServerGroupName", "OutputValue": st.StackName + "-ServerGroup-ABC"},
			map[string]any{"OutputKey": "WorkerGroupName", "OutputValue": st.StackName + "-WorkerGroup-DEF"},
		}
	}
	return s
}

// createChangeSet validates the parameters against the template as
// CloudFormation does (declared, required, AllowedPattern, AllowedValues)
// and records the change set; one that changes nothing fails as it does.
func createChangeSet(c *call, name string, exists bool, st Stack) (any, error) {
	const op = "CreateChangeSet"
	body := c.opt("template-body")
	raw, err := os.ReadFile(strings.TrimPrefix(body, "file://"))
	if !strings.HasPrefix(body, "file://") || err != nil {
		return nil, &apiError{"ValidationError", op, "cannot read --template-body " + body}
	}
	var tmpl struct {
		Parameters map[string]struct {
			Type           string   `yaml:"Type"`
			Default        *string  `yaml:"Default"`
			AllowedPattern string   `yaml:"AllowedPattern"`
			AllowedValues  []string `yaml:"AllowedValues"`
		} `yaml:"Parameters"`
	}
	if err := yaml.Unmarshal(raw, &tmpl); err != nil {
		return nil, &apiError{"ValidationError", op, "Template format error: " + err.Error()}
	}
	params := map[string]string{}
	for _, p := range c.opts["parameters"] {
		m := shorthand(p, "ParameterKey", "ParameterValue")
		k := m["ParameterKey"]
		decl, ok := tmpl.Parameters[k]
		if !ok {
			return nil, &apiError{"ValidationError", op, "Parameters: [" + k + "] do not exist in the template"}
		}
		v := m["ParameterValue"]
		if decl.AllowedPattern != "" && !regexp.MustCompile("^(?:"+decl.AllowedPattern+")$").MatchString(v) {
			return nil, &apiError{"ValidationError", op, "Parameter '" + k + "' must match pattern " + decl.AllowedPattern}
		}
		if len(decl.AllowedValues) > 0 && !contains(decl.AllowedValues, v) {
			return nil, &apiError{"ValidationError", op, "Parameter '" + k + "' must be one of AllowedValues"}
		}
		if decl.Type == "AWS::EC2::Image::Id" && !regexp.MustCompile(`^ami-[0-9a-f]{8,17}$`).MatchString(v) {
			return nil, &apiError{"ValidationError", op, "Parameter value " + v + " for parameter name " + k + " does not exist"}
		}
		params[k] = v
	}
	for k, decl := range tmpl.Parameters {
		if _, ok := params[k]; !ok {
			if decl.Default == nil {
				return nil, &apiError{"ValidationError", op, "Parameters: [" + k + "] must have values"}
			}
			params[k] = *decl.Default
		}
	}
	typ := c.opt("change-set-type")
	switch {
	case typ == "CREATE" && exists && st.StackStatus != "REVIEW_IN_PROGRESS":
		return nil, &apiError{"AlreadyExistsException", op, "Stack [" + name + "] already exists"}
	case typ == "UPDATE" && !exists:
		return nil, &apiError{"ValidationError", op, "Stack [" + name + "] does not exist"}
	case typ == "UPDATE" && (!strings.HasSuffix(st.StackStatus, "_COMPLETE") || st.StackStatus == "ROLLBACK_COMPLETE"):
		return nil, &apiError{"ValidationError", op, "Stack:" + stackARN(c, name) + " is in " + st.StackStatus + " state and can not be updated."}
	case typ != "CREATE" && typ != "UPDATE":
		return nil, &apiError{"ValidationError", op, "--change-set-type must be CREATE or UPDATE"}
	}
	if c.opts["capabilities"] == nil || c.opt("capabilities") != "CAPABILITY_IAM" {
		return nil, &apiError{"InsufficientCapabilitiesException", op, "Requires capabilities : [CAPABILITY_IAM]"}
	}
	sum := sha256.Sum256(raw)
	cs := ChangeSet{Type: typ, Status: "CREATE_COMPLETE", Parameters: params, TemplateSum: hex.EncodeToString(sum[:])}
	switch {
	case c.has("csfail"):
		cs.Status, cs.StatusReason = "FAILED", "Template error: unresolved resource dependencies"
	case typ == "UPDATE" && cs.TemplateSum == st.TemplateSum && reflect.DeepEqual(params, st.Parameters):
		cs.Status, cs.StatusReason = "FAILED", noChanges
	}
	if typ == "CREATE" && !exists {
		if err := writeJSON(stackFile(c, name), Stack{StackName: name, StackStatus: "REVIEW_IN_PROGRESS"}); err != nil {
			return nil, err
		}
	}
	csName := c.opt("change-set-name")
	return map[string]any{"Id": stackARN(c, name) + "/changeSet/" + csName, "StackId": stackARN(c, name)},
		writeJSON(changeSetFile(c, name, csName), cs)
}

func executeChangeSet(c *call, name string, st Stack) error {
	file := changeSetFile(c, name, c.opt("change-set-name"))
	var cs ChangeSet
	if ok, err := readJSON(file, &cs); err != nil || !ok || cs.Status != "CREATE_COMPLETE" {
		return &apiError{"InvalidChangeSetStatus", "ExecuteChangeSet", "ChangeSet [" + c.opt("change-set-name") + "] cannot be executed in its current status"}
	}
	os.Remove(file)
	st.StackName = name
	switch {
	case c.has("fail") && cs.Type == "CREATE":
		st.StackStatus, st.Parameters, st.TemplateSum = "ROLLBACK_COMPLETE", cs.Parameters, cs.TemplateSum
	case c.has("fail"):
		st.StackStatus = "UPDATE_ROLLBACK_COMPLETE"
	default:
		st.StackStatus, st.Parameters, st.TemplateSum = cs.Type+"_COMPLETE", cs.Parameters, cs.TemplateSum
	}
	return writeJSON(stackFile(c, name), st)
}

// wait answers the waiters at once from the stack's final state.
func wait(c *call, name string, exists bool, st Stack) error {
	waiter := len(c.pos) > 0
	if !waiter {
		return errUnknown
	}
	w := c.pos[0]
	title := opName(w)
	switch w {
	case "change-set-create-complete":
		var cs ChangeSet
		if ok, err := readJSON(changeSetFile(c, name, c.opt("change-set-name")), &cs); err != nil || !ok {
			return &waiterError{title, "ChangeSetNotFound"}
		}
		if cs.Status != "CREATE_COMPLETE" {
			return &waiterError{title, `For expression "Status" we matched expected path: "FAILED"`}
		}
	case "stack-create-complete", "stack-update-complete":
		want := strings.ToUpper(strings.TrimSuffix(strings.TrimPrefix(w, "stack-"), "-complete")) + "_COMPLETE"
		if !exists || st.StackStatus != want {
			return &waiterError{title, `For expression "Stacks[].StackStatus" we matched expected path: "` + st.StackStatus + `" at least once`}
		}
	case "stack-delete-complete":
		if exists {
			return &waiterError{title, "stack " + name + " still exists"}
		}
	default:
		return errUnknown
	}
	return nil
}

func contains(l []string, s string) bool {
	for _, e := range l {
		if e == s {
			return true
		}
	}
	return false
}
