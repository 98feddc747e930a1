def test_products_are_listed_in_ladder_order_for_a_key_of_this_store(api_for, write_key):
    from tests.factories import ProductFactory

    ProductFactory(slug="premium", ladder_position=3)
    ProductFactory(slug="entry", ladder_position=1)
    response = api_for("t1.localhost", write_key).get("/api/v1/products/")
    assert response.status_code == 200, response.content
    assert [p["slug"] for p in response.json()["results"]] == ["entry", "premium"]
