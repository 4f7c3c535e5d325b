package main

import (
	"crypto/md5"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Bucket is a bucket's state: buckets/NAME/bucket.json, its objects in
// buckets/NAME/objects/ (keys path-escaped) with OBJECT.meta.json beside.
type Bucket struct {
	Owner, Region                          string
	ObjectOwnership                        string `json:",omitempty"`
	PublicAccessBlock, Encryption, Tagging string `json:",omitempty"`
}

// Object is an object's metadata.
type Object struct {
	Metadata             map[string]string `json:",omitempty"`
	ServerSideEncryption string            `json:",omitempty"`
}

var reBucket = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

func s3(c *call) (any, error) {
	if c.service == "s3" {
		if c.op == "rb" && len(c.pos) == 1 {
			return nil, removeBucket(c, strings.TrimPrefix(c.pos[0], "s3://"))
		}
		return nil, errUnknown
	}
	name := c.opt("bucket")
	dir := filepath.Join(c.state, "buckets", name)
	var b Bucket
	exists, err := readJSON(filepath.Join(dir, "bucket.json"), &b)
	if err != nil {
		return nil, err
	}
	op := opName(c.op)
	if c.op == "create-bucket" {
		return createBucket(c, name, dir, exists, b)
	}
	if !exists {
		if c.op == "head-bucket" {
			return nil, &apiError{"404", op, "Not Found"}
		}
		return nil, &apiError{"NoSuchBucket", op, "The specified bucket does not exist"}
	}
	if o := c.opt("expected-bucket-owner"); (o != "" && o != b.Owner) || b.Owner != Account {
		if c.op == "head-bucket" || c.op == "head-object" {
			return nil, &apiError{"403", op, "Forbidden"}
		}
		return nil, &apiError{"AccessDenied", op, "Access Denied"}
	}
	save := func() (any, error) { return nil, writeJSON(filepath.Join(dir, "bucket.json"), b) }
	obj := filepath.Join(dir, "objects", url.PathEscape(c.opt("key")))
	switch c.op {
	case "head-bucket":
		return map[string]any{"BucketRegion": b.Region, "AccessPointAlias": false}, nil
	case "put-public-access-block":
		b.PublicAccessBlock = c.opt("public-access-block-configuration")
		return save()
	case "put-bucket-encryption":
		b.Encryption = c.opt("server-side-encryption-configuration")
		return save()
	case "put-bucket-tagging":
		b.Tagging = c.opt("tagging")
		return save()
	case "head-object":
		var o Object
		ok, err := readJSON(obj+".meta.json", &o)
		if err != nil || !ok {
			return nil, &apiError{"404", op, "Not Found"}
		}
		fi, err := os.Stat(obj)
		if err != nil {
			return nil, err
		}
		return map[string]any{"ContentLength": fi.Size(), "Metadata": o.Metadata, "ServerSideEncryption": o.ServerSideEncryption}, nil
	case "put-object":
		body, err := os.ReadFile(c.opt("body"))
		if err != nil {
			return nil, &apiError{"ParamValidation", op, "cannot read --body: " + err.Error()}
		}
		o := Object{Metadata: map[string]string{}, ServerSideEncryption: c.opt("server-side-encryption")}
		for _, kv := range strings.Split(c.opt("metadata"), ",") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				o.Metadata[k] = v
			}
		}
		if o.ServerSideEncryption == "" && b.Encryption != "" {
			o.ServerSideEncryption = "AES256"
		}
		if err := os.MkdirAll(filepath.Dir(obj), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(obj, body, 0o644); err != nil {
			return nil, err
		}
		sum := md5.Sum(body)
		return map[string]any{"ETag": `"` + hex.EncodeToString(sum[:]) + `"`, "ServerSideEncryption": o.ServerSideEncryption},
			writeJSON(obj+".meta.json", o)
	}
	return nil, errUnknown
}

func createBucket(c *call, name, dir string, exists bool, b Bucket) (any, error) {
	const op = "CreateBucket"
	switch {
	case !reBucket.MatchString(name):
		return nil, &apiError{"InvalidBucketName", op, "The specified bucket is not valid."}
	case exists && b.Owner == Account:
		return nil, &apiError{"BucketAlreadyOwnedByYou", op, "Your previous request to create the named bucket succeeded and you already own it."}
	case exists:
		return nil, &apiError{"BucketAlreadyExists", op, "The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again."}
	}
	loc := shorthand(c.opt("create-bucket-configuration"), "LocationConstraint")["LocationConstraint"]
	switch {
	case c.region == "us-east-1" && loc != "":
		return nil, &apiError{"InvalidLocationConstraint", op, "The specified location-constraint is not valid"}
	case c.region != "us-east-1" && loc != c.region:
		return nil, &apiError{"IllegalLocationConstraintException", op,
			"The unspecified location constraint is incompatible for the region specific endpoint this request was sent to."}
	}
	b = Bucket{Owner: Account, Region: c.region, ObjectOwnership: c.opt("object-ownership")}
	return map[string]any{"Location": "http://" + name + ".s3.amazonaws.com/"}, writeJSON(filepath.Join(dir, "bucket.json"), b)
}

func removeBucket(c *call, name string) error {
	dir := filepath.Join(c.state, "buckets", name)
	var b Bucket
	exists, err := readJSON(filepath.Join(dir, "bucket.json"), &b)
	switch {
	case err != nil:
		return err
	case !exists:
		return &apiError{"NoSuchBucket", "DeleteBucket", "The specified bucket does not exist"}
	case b.Owner != Account:
		return &apiError{"AccessDenied", "DeleteBucket", "Access Denied"}
	}
	if objs, _ := os.ReadDir(filepath.Join(dir, "objects")); len(objs) > 0 && !forced(c) {
		return &apiError{"BucketNotEmpty", "DeleteBucket", "The bucket you tried to delete is not empty"}
	}
	return os.RemoveAll(dir)
}

// opName turns a CLI operation (head-bucket) into the API's (HeadBucket).
func opName(op string) string {
	var b strings.Builder
	for _, w := range strings.Split(op, "-") {
		if w != "" {
			b.WriteString(strings.ToUpper(w[:1]) + w[1:])
		}
	}
	return b.String()
}

func forced(c *call) bool {
	_, ok := c.opts["force"]
	return ok
}
