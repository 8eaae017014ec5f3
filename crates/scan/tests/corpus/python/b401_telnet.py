import telnetlib
