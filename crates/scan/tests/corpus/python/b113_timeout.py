import requests as rq

def fetch(url):
    return rq.post(url, data={})
