package config

import "time"

// Store is where the bbolt database lives.
type Store struct {
	Path        string   `yaml:"path"`
	OpenTimeout Duration `yaml:"open_timeout"`
}

func (s *Store) defaults() {
	setDefault(&s.Path, "deploybot.db")
	s.OpenTimeout.orDefault(time.Second)
}
