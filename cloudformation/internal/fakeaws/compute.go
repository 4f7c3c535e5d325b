package main

import (
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// FlatcarOwner is the account Flatcar publishes its AMIs from.
const FlatcarOwner = "075585003325"

// Image is one AMI of ec2 describe-images.
type Image struct {
	ImageId            string
	Name               string
	OwnerId            string
	Architecture       string
	VirtualizationType string
	State              string
	CreationDate       string
	Public             bool
}

// defaultImages are the region's images unless the state directory has an
// images.json: Flatcar's stable, beta and arm64 images, and a look-alike of
// another owner that is newer than all of them.
var defaultImages = []Image{
	{"ami-0a4230020300aaaaa", "Flatcar-stable-4230.2.3-hvm", FlatcarOwner, "x86_64", "hvm", "available", "2026-09-10T12:00:00.000Z", true},
	{"ami-0a4230020400aaaaa", "Flatcar-stable-4230.2.4-hvm", FlatcarOwner, "x86_64", "hvm", "available", "2026-10-20T12:00:00.000Z", true},
	{"ami-0a4230020200aaaaa", "Flatcar-stable-4230.2.2-hvm", FlatcarOwner, "x86_64", "hvm", "available", "2026-08-01T12:00:00.000Z", true},
	{"ami-0b4230020400bbbbb", "Flatcar-stable-4230.2.4-arm64-hvm", FlatcarOwner, "arm64", "hvm", "available", "2026-10-21T12:00:00.000Z", true},
	{"ami-0c4284010000ccccc", "Flatcar-beta-4284.1.0-hvm", FlatcarOwner, "x86_64", "hvm", "available", "2026-11-01T12:00:00.000Z", true},
	{"ami-0d9999000000ddddd", "Flatcar-stable-9999.0.0-hvm", "999999999999", "x86_64", "hvm", "available", "2026-11-30T12:00:00.000Z", true},
}

func ec2(c *call) (any, error) {
	switch c.op {
	case "describe-images":
		images := defaultImages
		if _, err := readJSON(filepath.Join(c.state, "images.json"), &images); err != nil {
			return nil, err
		}
		return describeImages(c, images)
	case "describe-instances":
		reservations := []any{}
		for _, id := range c.opts["instance-ids"] {
			in, ok := instances[id]
			if !ok {
				return nil, &apiError{"InvalidInstanceID.NotFound", "DescribeInstances", "The instance ID '" + id + "' does not exist"}
			}
			reservations = append(reservations, map[string]any{"ReservationId": "r-" + id[2:], "Instances": []any{map[string]any{
				"InstanceId": id, "PublicIpAddress": in.public, "PrivateIpAddress": in.private, "State": map[string]any{"Name": "running"}}}})
		}
		return map[string]any{"Reservations": reservations}, nil
	}
	return nil, errUnknown
}

func describeImages(c *call, images []Image) (any, error) {
	owners := map[string]bool{}
	for _, o := range c.opts["owners"] {
		owners[o] = true
	}
	type filter struct{ name, values string }
	var filters []filter
	for _, f := range c.opts["filters"] {
		m := shorthand(f, "Name", "Values")
		filters = append(filters, filter{m["Name"], m["Values"]})
	}
	field := func(im Image, name string) (string, bool) {
		switch name {
		case "name":
			return im.Name, true
		case "architecture":
			return im.Architecture, true
		case "virtualization-type":
			return im.VirtualizationType, true
		case "state":
			return im.State, true
		case "owner-id":
			return im.OwnerId, true
		}
		return "", false
	}
	out := []Image{}
	for _, im := range images {
		if len(owners) > 0 && !owners[im.OwnerId] {
			continue
		}
		ok := true
		for _, f := range filters {
			v, known := field(im, f.name)
			if !known {
				return nil, &apiError{"InvalidParameterValue", "DescribeImages", "The filter '" + f.name + "' is invalid"}
			}
			match := false
			for _, pattern := range strings.Split(f.values, ",") {
				if m, _ := path.Match(pattern, v); m {
					match = true
				}
			}
			ok = ok && match
		}
		if ok {
			out = append(out, im)
		}
	}
	return map[string]any{"Images": out}, nil
}

type instance struct{ public, private string }

var instances = map[string]instance{
	"i-0server1": {"203.0.113.11", "10.0.1.11"},
	"i-0server2": {"203.0.113.12", "10.0.2.11"},
	"i-0server3": {"203.0.113.13", "10.0.1.12"},
	"i-0worker1": {"203.0.113.21", "10.0.1.50"},
}

// describeGroups answers for the stack's groups: the servers (the first
// one still Pending) and one worker.
func describeGroups(c *call) any {
	groups := []any{}
	for _, name := range c.opts["auto-scaling-group-names"] {
		var ins []any
		switch {
		case strings.Contains(name, "ServerGroup"):
			ins = []any{
				map[string]any{"InstanceId": "i-0server1", "LifecycleState": "Pending", "HealthStatus": "Healthy"},
				map[string]any{"InstanceId": "i-0server2", "LifecycleState": "InService", "HealthStatus": "Healthy"},
				map[string]any{"InstanceId": "i-0server3", "LifecycleState": "InService", "HealthStatus": "Healthy"},
			}
		case strings.Contains(name, "WorkerGroup"):
			ins = []any{map[string]any{"InstanceId": "i-0worker1", "LifecycleState": "InService", "HealthStatus": "Healthy"}}
		default:
			continue
		}
		groups = append(groups, map[string]any{"AutoScalingGroupName": name, "Instances": ins})
	}
	return map[string]any{"AutoScalingGroups": groups}
}

// hostedZones lists the zones in the order Route53 does (by reversed
// labels), from --dns-name on: a domain without a zone gets the next one.
func hostedZones(c *call) any {
	zones := []map[string]any{
		{"Id": "/hostedzone/Z123EXAMPLE", "Name": "example.com.", "CallerReference": "a"},
		{"Id": "/hostedzone/Z456OTHER", "Name": "example.org.", "CallerReference": "b"},
	}
	rev := func(name string) string {
		l := strings.Split(strings.TrimSuffix(name, "."), ".")
		for i, j := 0, len(l)-1; i < j; i, j = i+1, j-1 {
			l[i], l[j] = l[j], l[i]
		}
		return strings.Join(l, ".")
	}
	sort.Slice(zones, func(i, j int) bool { return rev(zones[i]["Name"].(string)) < rev(zones[j]["Name"].(string)) })
	from := rev(c.opt("dns-name"))
	out := []any{}
	for _, z := range zones {
		if rev(z["Name"].(string)) >= from {
			out = append(out, z)
		}
	}
	if c.opt("max-items") == "1" && len(out) > 1 {
		out = out[:1]
	}
	return map[string]any{"HostedZones": out, "DNSName": c.opt("dns-name"), "IsTruncated": false}
}
