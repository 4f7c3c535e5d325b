package units

// podman keeps a container's --env-file variables in its database
// (BoltDB), whose freed pages keep them after the container is removed.
// Env secrets of podman apps go through podman secrets instead: one per
// variable and instance, of podman's "shell" driver, whose lookup reads the
// value from the instance's env file on tmpfs when the container starts.
// podman then keeps the secret's name in its database, not its value.

// podmanSecretName is the podman secret of an instance's variable k
// (validated by spec: letters, digits, '_').
func podmanSecretName(k string) string { return containerName + "-" + k }

// podmanSecretsCreate renders the lines that (re)create the instance's
// podman secrets, after the pre-start hook wrote the env file. The data
// given to "create" is the env file, which the store command discards: the
// value is read at each start by lookup, which prints the variable's line
// of the env file without its name and line break.
func (r *appRenderer) podmanSecretsCreate(cli string) {
	env := r.secretsDir() + "/" + SecretsEnvFile
	r.podmanSecretsRemove(cli, "ExecStartPre")
	for _, k := range sortedKeys(r.app.SecretEnv()) {
		opts := Joined(Lit("store=cat >/dev/null,lookup=sed -n s/^"+k+"=//p "), Raw(env), Lit(" | tr -d '\\n',delete=true,list=true"))
		r.exec("ExecStartPre", "", Lit(cli), Lit("secret"), Lit("create"), Lit("--driver"), Lit("shell"), Lit("--driver-opts"), opts,
			Raw(podmanSecretName(k)), Raw(env))
	}
}

// podmanSecretsRemove renders "podman secret rm" of the instance's
// secrets (failure ignored: they may not exist).
func (r *appRenderer) podmanSecretsRemove(cli, key string) {
	for _, k := range sortedKeys(r.app.SecretEnv()) {
		r.exec(key, "-", Lit(cli), Lit("secret"), Lit("rm"), Raw(podmanSecretName(k)))
	}
}
