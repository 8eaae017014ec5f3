from ftplib import FTP
