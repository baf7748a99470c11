"""pamwire: a privileged-access proxy for PostgreSQL and MySQL/MariaDB."""

__version__ = "0.1.0"
