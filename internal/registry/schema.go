package registry

import (
	"context"
	"errors"
	"fmt"

	"github.com/coreos/go-semver/semver"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// SchemaVersion is the schema this build reads and writes.
const SchemaVersion = "1.0.0"

// ErrSchemaTooNew is returned (wrapped) when etcd holds a schema of a newer
// major version than this build reads: upgrade berth.
var ErrSchemaTooNew = errors.New("etcd holds a newer berth schema")

// checkSchema refuses a stored schema version of a newer major. A missing
// key is fine (an empty cluster).
func checkSchema(stored []byte) error {
	if len(stored) == 0 {
		return nil
	}
	v, err := semver.NewVersion(string(stored))
	if err != nil {
		return fmt.Errorf("schema version %q is not semver: %w", stored, err)
	}
	ours := semver.New(SchemaVersion)
	if v.Major > ours.Major {
		return fmt.Errorf("%w: %s (this berth reads %d.x): upgrade berth", ErrSchemaTooNew, v, ours.Major)
	}
	return nil
}

// EnsureSchema writes SchemaVersion if no schema is stored yet, and checks
// the stored one otherwise. Writers call it before their first write.
func EnsureSchema(ctx context.Context, kv clientv3.KV, k Keys) error {
	key := k.Schema()
	resp, err := kv.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, SchemaVersion)).
		Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return fmt.Errorf("write schema version: %w", err)
	}
	if resp.Succeeded {
		return nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return nil
	}
	return checkSchema(kvs[0].Value)
}
