package registry

import (
	"context"
	"encoding/json"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/spec"
)

// PublishApp writes an app's spec and its domains in one transaction,
// after checking the schema version.
func PublishApp(ctx context.Context, kv clientv3.KV, k Keys, app *spec.App) error {
	if err := EnsureSchema(ctx, kv, k); err != nil {
		return err
	}
	key, err := k.App(app.Name)
	if err != nil {
		return err
	}
	val, err := json.Marshal(app)
	if err != nil {
		return err
	}
	ops := []clientv3.Op{clientv3.OpPut(key, string(val))}
	dom, _ := json.Marshal(Domain{App: app.Name})
	for _, d := range app.Domains {
		dk, err := k.Domain(d)
		if err != nil {
			return err
		}
		ops = append(ops, clientv3.OpPut(dk, string(dom)))
	}
	if _, err := kv.Txn(ctx).Then(ops...).Commit(); err != nil {
		return fmt.Errorf("publish app %s: %w", app.Name, err)
	}
	return nil
}

// InstanceKV returns the key and JSON value of an instance record,
// validated.
func InstanceKV(k Keys, in *Instance) (string, string, error) {
	if err := in.Validate(); err != nil {
		return "", "", err
	}
	key, err := k.Instance(in.App, in.ID)
	if err != nil {
		return "", "", err
	}
	val, err := json.Marshal(in)
	return key, string(val), err
}
