"""A strict emulator of MyCase and Case Status, served over real HTTP on 127.0.0.1."""
