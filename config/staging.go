package config

// Staging is where the staging git repository lives.
type Staging struct {
	Path string `yaml:"path"`
}

func (s *Staging) defaults() {
	setDefault(&s.Path, "staging.git")
}
