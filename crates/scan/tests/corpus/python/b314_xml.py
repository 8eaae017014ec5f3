import xml.etree.ElementTree as ET

def read(path):
    return ET.parse(path)
