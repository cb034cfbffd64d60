package config

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// readSecret reads a secret (a token, a password) from the environment
// variable env or else the file file, without surrounding whitespace; ""
// when neither is set. setting names the pair in the file without its
// _env or _file ("chat.slack.bot_token"); errors name it and the variable
// or file, never the secret.
func readSecret(setting, env, file string) (string, error) {
	switch {
	case env != "":
		v := strings.TrimSpace(os.Getenv(env))
		if v == "" {
			return "", fmt.Errorf("%s_env: the environment variable %s is not set or empty", setting, env)
		}
		return v, nil
	case file != "":
		data, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("%s_file: cannot read %s: %v", setting, file, pathErr(err))
		}
		v := strings.TrimSpace(string(data))
		if v == "" {
			return "", fmt.Errorf("%s_file: %s is empty", setting, file)
		}
		return v, nil
	}
	return "", nil
}

// pathErr keeps only the reason of an *os.PathError ("no such file or
// directory"): the messages it goes into name the file already.
func pathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
