import pytest


@pytest.mark.django_db
def test_the_home_page_says_what_the_site_does(client):
    response = client.get("/")

    assert response.status_code == 200
    assert "hands the slow work" in response.content.decode()
