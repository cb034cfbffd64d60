package config

import "go.yaml.in/yaml/v3"

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
	File   string `yaml:"file"`   // default: standard error
}

func (l *Log) defaults() {
	setDefault(&l.Level, "info")
	setDefault(&l.Format, "text")
}

func (l *Log) check(root *yaml.Node) Problems {
	var ps Problems
	switch l.Level {
	case "debug", "info", "warn", "error":
	default:
		ps.add(lineOf(root, "log", "level"), "log level %q is not one of debug, info, warn, error", l.Level)
	}
	switch l.Format {
	case "text", "json":
	default:
		ps.add(lineOf(root, "log", "format"), "log format %q is not text or json", l.Format)
	}
	return ps
}
