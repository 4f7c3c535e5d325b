package registry

import (
	"fmt"

	"github.com/berthproject/berth/internal/spec"
)

// Keys of sealed secrets (internal/secret, docs/secrets.md). They live
// outside Prefix() on purpose: the routers' watch cache lists and watches
// all of <root>/v1/, and berth-reader (routers) and berth-dns (dnsd) must not
// read secrets. etcd grants ranges, so the secrets need a range of their own.
//
//	<root>/secrets/v1/recipients           the age recipients new values are sealed to, one a line
//	<root>/secrets/v1/apps/<app>/<name>    one sealed value (SealedSecret JSON)
func (k Keys) secretsPrefix() string { return k.root + "/secrets/v1/" }

// SecretsRoot is the prefix of every key about sealed secrets; the etcd
// roles grant it to nodes and operators only.
func (k Keys) SecretsRoot() string { return k.root + "/secrets/" }

// SecretRecipients is the key of the cluster's recipients: the public keys
// "berth secret put" seals values to.
func (k Keys) SecretRecipients() string { return k.secretsPrefix() + "recipients" }

// SecretsPrefix is the prefix of every app's sealed secrets.
func (k Keys) SecretsPrefix() string { return k.secretsPrefix() + "apps/" }

// SecretsOf is the prefix of an app's sealed secrets.
func (k Keys) SecretsOf(app string) (string, error) {
	if err := checkApp(app); err != nil {
		return "", err
	}
	return k.SecretsPrefix() + app + "/", nil
}

// Secret is the key of one sealed secret of an app.
func (k Keys) Secret(app, name string) (string, error) {
	p, err := k.SecretsOf(app)
	if err != nil {
		return "", err
	}
	if err := spec.CheckSecretName(name); err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadName, err)
	}
	return p + name, nil
}
