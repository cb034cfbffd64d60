package config

import "time"

// Store is where the bbolt database lives.
type Store struct {
	Path        string   `yaml:"path"`
	OpenTimeout Duration `yaml:"open_timeout"`
}

func (s *Store) defaults() {
	if s.Path == "" {
		s.Path = "deploybot.db"
	}
	if s.OpenTimeout.D() == 0 {
		s.OpenTimeout = Dur(time.Second)
	}
}
